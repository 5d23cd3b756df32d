import type Database from 'better-sqlite3';
import { StorageError } from '../errors.js';
import { WebhookSecretBox } from '../outbox/secret-box.js';
import type { OutboxDelivery, OutboxEvent, WebhookDelivery, WebhookEndpoint } from '../upload/model.js';
import type {
  ClaimedDelivery,
  ClaimOptions,
  CompletedDelivery,
  DeliveryQuery,
  NewWebhookEndpoint,
  OutboxEmitter,
  OutboxStore,
  RecoveredEndpoint,
  RotateSecretOptions,
  UnitOfWork,
  UploadRepository,
  UploadTransaction,
} from '../upload/ports.js';
import { checkNewWebhookEndpoint, validateRotation, type EndpointGuardOptions } from '../upload/webhook-endpoint.js';
import { openConnection, type SqliteUploadStoreOptions } from './connection.js';
import { enqueue, queueKey } from './file-queue.js';
import { migrate } from './migrations.js';
import { Statements } from './rows.js';
import { SqliteOutbox } from './sqlite-outbox.js';
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
  readonly #relay: SqliteOutbox;
  readonly #guard: EndpointGuardOptions;
  readonly #listeners = new Set<() => void>();
  /** The repository outside any transaction (each call commits on its own). */
  readonly repository: UploadRepository;
  /** The emitter outside any transaction (each new event commits on its own). */
  readonly outbox: OutboxEmitter;

  /**
   * Opens the file (when `database` is a path), sets the pragmas and, unless `migrate: false`,
   * applies missing migrations.
   * @throws StorageConfigError (`option: 'database'`) when `database` is neither a Database nor a path, or cannot be opened;
   * (`option: 'secretsKey'`) when `secretsKey` is given but not 32 bytes (then nothing is opened).
   */
  constructor(options: SqliteUploadStoreOptions) {
    const box = new WebhookSecretBox(options.secretsKey);
    this.#guard = { allowPrivateNetworks: options.allowPrivateNetworks === true };
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
    this.#relay = new SqliteOutbox(this.#sql, box, () => this.#notify());
    const view = new SqliteView(this.#sql, { check: () => undefined, emitted: () => this.#notify() });
    const q = <T>(fn: () => Promise<T>): Promise<T> => enqueue(this.#key, fn);
    this.repository = {
      createFile: (file) => q(() => view.createFile(file)),
      getFile: (id) => q(() => view.getFile(id)),
      updateFile: (id, patch, opts) => q(() => view.updateFile(id, patch, opts)),
      deleteFile: (id) => q(() => view.deleteFile(id)),
      deleteFiles: (ids) => q(() => view.deleteFiles(ids)),
      failFiles: (ids, error, opts) => q(() => view.failFiles(ids, error, opts)),
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
    return this.#run(() => this.#relay.listEvents());
  }

  /** {@inheritDoc OutboxStore.claimDeliveries} */
  claimDeliveries(options: ClaimOptions): Promise<ClaimedDelivery[]> {
    return this.#run(() => this.#relay.claimDeliveries(options));
  }

  /** {@inheritDoc OutboxStore.completeDeliveries} */
  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]> {
    return this.#run(() => this.#relay.completeDeliveries(items, now));
  }

  /** An event with its delivery state; undefined when there is none with this id. */
  getEvent(id: string): Promise<OutboxDelivery | undefined> {
    return this.#run(() => this.#relay.getEvent(id));
  }

  /** {@inheritDoc OutboxStore.getDelivery} */
  getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    return this.#run(() => this.#relay.getDelivery(id));
  }

  /** {@inheritDoc OutboxStore.listDeliveries} */
  listDeliveries(query?: DeliveryQuery): Promise<WebhookDelivery[]> {
    return this.#run(() => this.#relay.listDeliveries(query));
  }

  /** {@inheritDoc OutboxStore.redeliver} */
  redeliver(deliveryId: string, now?: Date): Promise<WebhookDelivery | undefined> {
    return this.#run(() => this.#relay.redeliver(deliveryId, now));
  }

  /** {@inheritDoc OutboxStore.redeliverEvent} */
  redeliverEvent(eventId: string, now?: Date): Promise<WebhookDelivery[]> {
    return this.#run(() => this.#relay.redeliverEvent(eventId, now));
  }

  /** {@inheritDoc OutboxStore.recoverEndpoint} */
  recoverEndpoint(endpointId: string, options: { since: Date; now?: Date }): Promise<RecoveredEndpoint | undefined> {
    return this.#run(() => this.#relay.recoverEndpoint(endpointId, options));
  }

  /** {@inheritDoc OutboxStore.deleteDeliveredEvents} */
  deleteDeliveredEvents(before: Date): Promise<number> {
    return this.#run(() => this.#relay.deleteDeliveredEvents(before));
  }

  /**
   * Add a webhook endpoint (active, for every event type, with a generated secret, unless told
   * otherwise), after checking it and, unless `allowPrivateNetworks`, that its URL is public.
   * @throws StorageConfigError for bad input; WebhookDestinationError for a non-public destination
   */
  async createWebhookEndpoint(endpoint: NewWebhookEndpoint): Promise<WebhookEndpoint> {
    // Outside the queue: the destination check may wait for DNS, and must not hold up the store.
    const secret = await checkNewWebhookEndpoint(endpoint, this.#guard);
    return this.#run(() => this.#relay.createWebhookEndpoint(endpoint, secret));
  }

  /** {@inheritDoc OutboxStore.getWebhookEndpoint} */
  getWebhookEndpoint(id: string): Promise<WebhookEndpoint | undefined> {
    return this.#run(() => this.#relay.getWebhookEndpoint(id));
  }

  /** {@inheritDoc OutboxStore.listWebhookEndpoints} */
  listWebhookEndpoints(): Promise<WebhookEndpoint[]> {
    return this.#run(() => this.#relay.listWebhookEndpoints());
  }

  /** {@inheritDoc OutboxStore.setWebhookEndpointActive} */
  setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined> {
    return this.#run(() => this.#relay.setWebhookEndpointActive(id, isActive));
  }

  /** {@inheritDoc OutboxStore.rotateWebhookSecret} */
  async rotateWebhookSecret(id: string, options?: RotateSecretOptions): Promise<WebhookEndpoint | undefined> {
    // Checked first: a bad option is refused the same way whether or not the endpoint exists.
    const rotation = validateRotation(options);
    return this.#run(() => this.#relay.rotateWebhookSecret(id, rotation));
  }

  /** Remove a webhook endpoint and its deliveries; nothing happens when there is none with this id. */
  deleteWebhookEndpoint(id: string): Promise<void> {
    return this.#run(() => this.#relay.deleteWebhookEndpoint(id));
  }

  /**
   * Call `listener` (on a microtask) after this store commits something due at once: a
   * transaction that emitted an event, an `outbox.emit` outside a transaction, a relay's notice,
   * a redelivery. Not after a rollback, not for a duplicate, and not for what other stores or
   * processes commit (a relay's polling finds those).
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
