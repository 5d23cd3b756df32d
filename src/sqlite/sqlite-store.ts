import type Database from 'better-sqlite3';
import { StorageError } from '../errors.js';
import type { OutboxDelivery, OutboxEvent, WebhookEndpoint } from '../upload/model.js';
import type {
  ClaimOptions,
  CompletedDelivery,
  DeliveryOutcome,
  NewWebhookEndpoint,
  OutboxEmitter,
  OutboxStore,
  UnitOfWork,
  UploadRepository,
  UploadTransaction,
} from '../upload/ports.js';
import { openConnection, type SqliteUploadStoreOptions } from './connection.js';
import { enqueue, queueKey } from './file-queue.js';
import { migrate } from './migrations.js';
import { Statements } from './rows.js';
import * as relay from './sqlite-outbox.js';
import { SqliteView } from './sqlite-view.js';

/**
 * The upload ports on SQLite (better-sqlite3 ≥ 12): a repository and an outbox whose event is
 * written in the same real transaction as the state change it reports, and the relay's
 * {@link OutboxStore}.
 *
 * better-sqlite3 is synchronous, and its own `db.transaction()` only takes synchronous
 * functions. So every operation of the store (and of any other store on the same file in this
 * process) goes through one promise queue, and {@link transaction} holds that queue from
 * `BEGIN IMMEDIATE` to `COMMIT` while its async `fn` runs. Stores in other processes are
 * serialized by SQLite's write lock. Keep transactions short: a writer in another process
 * waits (blocking its event loop) up to `busyTimeoutMs`.
 *
 * @example
 * const store = new SqliteUploadStore({ database: 'data/uploads.db' }) // migrates
 * const uploads = new UploadService({ storage, repository: store.repository, unitOfWork: store })
 * // on shutdown
 * await store.close()
 */
export class SqliteUploadStore implements UnitOfWork, OutboxStore {
  readonly #db: Database.Database;
  readonly #owned: boolean;
  readonly #key: unknown;
  readonly #sql: Statements;
  readonly #listeners = new Set<() => void>();
  /** The repository outside any transaction (each call commits on its own). */
  readonly repository: UploadRepository;
  /** The emitter outside any transaction (each new event commits on its own). */
  readonly outbox: OutboxEmitter;

  /**
   * Opens the file (when `database` is a path), sets the pragmas and, unless `migrate: false`,
   * applies missing migrations.
   * @throws StorageConfigError (`option: 'database'`) when `database` is neither a Database nor a path, or cannot be opened.
   */
  constructor(options: SqliteUploadStoreOptions) {
    const { db, owned } = openConnection(options);
    this.#db = db;
    this.#owned = owned;
    try {
      if (options.migrate !== false) migrate(db);
    } catch (error) {
      if (owned) db.close();
      throw error;
    }
    this.#key = queueKey(db);
    this.#sql = new Statements(db);
    const view = new SqliteView(this.#sql, { check: () => undefined, emitted: () => this.#notify() });
    const q = <T>(fn: () => Promise<T>): Promise<T> => enqueue(this.#key, fn);
    this.repository = {
      createFile: (file) => q(() => view.createFile(file)),
      getFile: (id) => q(() => view.getFile(id)),
      updateFile: (id, patch, opts) => q(() => view.updateFile(id, patch, opts)),
      deleteFile: (id) => q(() => view.deleteFile(id)),
      listBatchFiles: (batchId) => q(() => view.listBatchFiles(batchId)),
      findFiles: (query) => q(() => view.findFiles(query)),
      countFiles: (query) => q(() => view.countFiles(query)),
      listFiles: (page) => q(() => view.listFiles(page)),
      findFilesByStorageKey: (key) => q(() => view.findFilesByStorageKey(key)),
      claimStorageKey: (id, key, now) => q(() => view.claimStorageKey(id, key, now)),
      findLiveStorageKeys: (keys) => q(() => view.findLiveStorageKeys(keys)),
      createBatch: (batch) => q(() => view.createBatch(batch)),
      getBatch: (id) => q(() => view.getBatch(id)),
      updateBatch: (id, patch, now) => q(() => view.updateBatch(id, patch, now)),
    };
    this.outbox = { emit: (event) => q(() => view.emit(event)) };
  }

  #run<T>(fn: () => T): Promise<T> {
    return enqueue(this.#key, async () => fn());
  }

  /** Listeners run after the commit, each on its own microtask (a throw is an uncaught error, as from any event handler). */
  #notify(): void {
    for (const listener of this.#listeners) queueMicrotask(listener);
  }

  /**
   * Run `fn` in one `BEGIN IMMEDIATE` … `COMMIT` transaction; `ROLLBACK` when it throws.
   * Inside `fn`, use only `tx` (not `store.repository`, which would wait for this very
   * transaction to end).
   */
  transaction<T>(fn: (tx: UploadTransaction) => Promise<T>): Promise<T> {
    return enqueue(this.#key, async () => {
      this.#db.exec('BEGIN IMMEDIATE');
      let open = true;
      let emitted = false;
      const view = new SqliteView(this.#sql, {
        check: () => {
          if (!open) throw new StorageError('This SqliteUploadStore transaction has already ended; use the tx only inside its transaction() callback.');
        },
        emitted: () => {
          emitted = true;
        },
      });
      try {
        const result = await fn({ repository: view, outbox: view });
        open = false;
        this.#db.exec('COMMIT');
        if (emitted) this.#notify();
        return result;
      } catch (error) {
        open = false;
        // SQLite rolls back by itself on some errors (SQLITE_FULL, …); then there is nothing to undo.
        if (this.#db.inTransaction) {
          try {
            this.#db.exec('ROLLBACK');
          } catch (rollbackError) {
            throw new AggregateError([error, rollbackError], 'The SQLite transaction failed and could not be rolled back.');
          }
        }
        throw error;
      }
    });
  }

  /** Every event in the outbox, oldest first. */
  events(): Promise<OutboxEvent[]> {
    return this.#run(() => relay.listEvents(this.#sql));
  }

  /** {@inheritDoc OutboxStore.claimEvents} */
  claimEvents(options: ClaimOptions): Promise<OutboxDelivery[]> {
    return this.#run(() => relay.claimEvents(this.#sql, options));
  }

  /** {@inheritDoc OutboxStore.completeEvent} */
  completeEvent(claimed: Pick<OutboxDelivery, 'id' | 'nextAttemptAt'>, outcome: DeliveryOutcome, now: Date): Promise<boolean> {
    return this.#run(() => relay.completeEvent(this.#sql, claimed, outcome, now));
  }

  /** {@inheritDoc OutboxStore.completeEvents} */
  completeEvents(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]> {
    // One write transaction for the round.
    return this.#run(() => this.#db.transaction(() => items.map(({ claimed, outcome }) => relay.completeEvent(this.#sql, claimed, outcome, now))).immediate());
  }

  /** An event with its delivery state; undefined when there is none with this id. */
  getEvent(id: string): Promise<OutboxDelivery | undefined> {
    return this.#run(() => relay.getEvent(this.#sql, id));
  }

  /** {@inheritDoc OutboxStore.deleteDeliveredEvents} */
  deleteDeliveredEvents(before: Date): Promise<number> {
    return this.#run(() => relay.deleteDeliveredEvents(this.#sql, before));
  }

  /** Add a webhook endpoint (active, for every event type, with a generated secret, unless told otherwise). */
  createWebhookEndpoint(endpoint: NewWebhookEndpoint): Promise<WebhookEndpoint> {
    return this.#run(() => relay.createWebhookEndpoint(this.#sql, endpoint));
  }

  /** {@inheritDoc OutboxStore.listWebhookEndpoints} */
  listWebhookEndpoints(): Promise<WebhookEndpoint[]> {
    return this.#run(() => relay.listWebhookEndpoints(this.#sql));
  }

  /** {@inheritDoc OutboxStore.setWebhookEndpointActive} */
  setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined> {
    return this.#run(() => relay.setWebhookEndpointActive(this.#sql, id, isActive));
  }

  /** Remove a webhook endpoint; nothing happens when there is none with this id. */
  deleteWebhookEndpoint(id: string): Promise<void> {
    return this.#run(() => relay.deleteWebhookEndpoint(this.#sql, id));
  }

  /**
   * Call `listener` (on a microtask) after this store commits a new event: a transaction that
   * emitted one, or an `outbox.emit` outside a transaction. Not after a rollback, not for a
   * duplicate, and not for events other stores or processes commit (a relay's polling finds those).
   * @returns a function that unsubscribes this listener.
   * @example
   * const stop = await store.onEventCommitted(() => relay.wake())
   */
  async onEventCommitted(listener: () => void): Promise<() => Promise<void>> {
    // A wrapper per subscription: the same function subscribed twice is two subscriptions.
    const subscription = () => listener();
    this.#listeners.add(subscription);
    return async () => {
      this.#listeners.delete(subscription);
    };
  }

  /**
   * Wait for queued operations, then close the database if the store opened it (from a path).
   * A host's `Database` is left open. Listeners are removed.
   */
  close(): Promise<void> {
    return this.#run(() => {
      this.#listeners.clear();
      if (this.#owned) this.#db.close();
    });
  }
}
