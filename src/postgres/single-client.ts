/**
 * One connected `pg.Client` shared as if it were a pool: one statement or one transaction at a
 * time, in order. A transaction holds the connection from BEGIN to COMMIT, so no other
 * statement of the store can slip into it.
 */
import type { PoolLike, PooledClient, Queryable } from './migrations.js';

type NotificationListener = (message: { channel: string; payload?: string | undefined }) => void;

/** A connected `pg.Client` (or anything with `query` and notification events). */
export interface ClientLike extends Queryable {
  on(event: 'notification', listener: NotificationListener): unknown;
  removeListener(event: 'notification', listener: NotificationListener): unknown;
}

export class SerializedClient implements PoolLike {
  #tail: Promise<void> = Promise.resolve();

  constructor(readonly client: ClientLike) {}

  /** Wait for every earlier holder; resolves to the function that lets the next one in. */
  #acquire(): Promise<() => void> {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const turn = this.#tail.then(() => release);
    this.#tail = this.#tail.then(() => held);
    return turn;
  }

  async query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]) {
    const release = await this.#acquire();
    try {
      return await this.client.query<R>(text, values);
    } finally {
      release();
    }
  }

  async connect(): Promise<PooledClient> {
    const release = await this.#acquire();
    const { client } = this;
    let released = false;
    return {
      query: (text, values) => client.query(text, values),
      release: () => {
        if (released) return;
        released = true;
        release();
      },
      // The host owns the client and its events; the store never listens on a borrowed turn.
      on: () => undefined,
      removeAllListeners: () => undefined,
    };
  }
}
