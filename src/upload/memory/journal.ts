/**
 * The undo journal of the in-memory store: operations write to the live state through it, and
 * it remembers each entry's previous value, so a commit costs nothing and a rollback costs what
 * was changed (never a copy of the whole state).
 */

type Undo =
  | { map: Map<unknown, unknown>; key: unknown; had: boolean; value: unknown }
  | { set: Set<unknown>; member: unknown; had: boolean };

export class Journal {
  #undo: Undo[] = [];
  /** The key order, before their first delete, of maps whose order is observable. */
  readonly #orders = new Map<Map<unknown, unknown>, unknown[]>();
  #running = false;

  /** Run `fn`: its writes stay when it resolves, and are undone, newest first, when it throws. */
  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.#running) throw new Error('MemoryUploadStore: operations overlap (they must run one at a time under the lock)');
    this.#running = true;
    try {
      return await fn();
    } catch (error) {
      this.#rollback();
      throw error;
    } finally {
      this.#undo = [];
      this.#orders.clear();
      this.#running = false;
    }
  }

  #rollback(): void {
    for (let i = this.#undo.length - 1; i >= 0; i -= 1) {
      const entry = this.#undo[i] as Undo;
      if ('map' in entry) {
        if (entry.had) entry.map.set(entry.key, entry.value);
        else entry.map.delete(entry.key);
      } else if (entry.had) entry.set.add(entry.member);
      else entry.set.delete(entry.member);
    }
    // A restored entry went back in at the end of its map: put those maps back in their order.
    for (const [map, order] of this.#orders) {
      const entries = new Map(map);
      map.clear();
      for (const key of order) if (entries.has(key)) map.set(key, entries.get(key));
    }
  }

  set<K, V>(map: Map<K, V>, key: K, value: V): void {
    const had = map.has(key);
    this.#undo.push({ map: map as Map<unknown, unknown>, key, had, value: had ? map.get(key) : undefined });
    map.set(key, value);
  }

  /**
   * Delete `key` from `map`. With `keepOrder` (maps whose iteration order callers see: events,
   * deliveries, endpoints), a rollback also restores the order, at the cost of one copy of
   * the map's keys per operation that deletes from it.
   */
  delete<K, V>(map: Map<K, V>, key: K, options: { keepOrder?: boolean } = {}): boolean {
    if (!map.has(key)) return false;
    if (options.keepOrder === true && !this.#orders.has(map as Map<unknown, unknown>)) this.#orders.set(map as Map<unknown, unknown>, [...map.keys()]);
    this.#undo.push({ map: map as Map<unknown, unknown>, key, had: true, value: map.get(key) });
    map.delete(key);
    return true;
  }

  /** Add `member` to the set of `key` in a one-to-many index (order not kept). */
  link<K, M>(index: Map<K, Set<M>>, key: K, member: M): void {
    let members = index.get(key);
    if (members === undefined) {
      members = new Set();
      this.set(index, key, members);
    }
    if (members.has(member)) return;
    this.#undo.push({ set: members as Set<unknown>, member, had: false });
    members.add(member);
  }

  /** Remove `member` from the set of `key`, and the set when it is left empty. */
  unlink<K, M>(index: Map<K, Set<M>>, key: K, member: M): void {
    const members = index.get(key);
    if (members?.has(member) !== true) return;
    this.#undo.push({ set: members as Set<unknown>, member, had: true });
    members.delete(member);
    if (members.size === 0) this.delete(index, key);
  }
}
