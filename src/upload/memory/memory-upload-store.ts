import { WebhookSecretBox, type SecretsKey } from '../../outbox/secret-box.js';
import type { OutboxDelivery, OutboxEvent, WebhookDelivery, WebhookEndpoint } from '../model.js';
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
} from '../ports.js';
import { checkNewWebhookEndpoint, type EndpointGuardOptions } from '../webhook-endpoint.js';
import { emitEvent, eventOf } from './events.js';
import { MemoryRepository } from './files.js';
import { Journal } from './journal.js';
import { MemoryOutbox } from './outbox.js';
import { emptyState, type Workspace } from './state.js';

/** Options of {@link MemoryUploadStore}. */
export interface MemoryUploadStoreOptions {
  /**
   * Keep webhook endpoint secrets encrypted (AES-256-GCM), as the SQL stores do with this option:
   * 32 bytes, as base64 (`openssl rand -base64 32`), hex, or a Buffer.
   * @default undefined (secrets kept as given)
   * @example new MemoryUploadStore({ secretsKey: process.env.WEBHOOK_SECRETS_KEY })
   */
  secretsKey?: SecretsKey | undefined;
  /**
   * Register endpoints on loopback, private and other non-public addresses too (see the relay's
   * option of the same name). @default false
   */
  allowPrivateNetworks?: boolean | undefined;
}

type Locked<T> = { [K in keyof T]: T[K] };

const ENDED = 'this transaction has ended: use `tx` only inside the function given to transaction(), and await every call on it';

/**
 * In-memory upload repository, outbox, unit of work and relay store: the reference
 * implementation of the ports, and the test double. Operations are serialized. Each one, and
 * each transaction, writes to the state as it goes and keeps an undo journal, so a throw rolls
 * everything back (the key index and the outbox included) and an operation costs what it
 * changes, not what is stored. Returned records are copies.
 *
 * @example
 * const store = new MemoryUploadStore()
 * const service = new UploadService({ storage, repository: store.repository, unitOfWork: store })
 * const relay = new OutboxRelay({ store })
 */
export class MemoryUploadStore implements UnitOfWork, OutboxStore {
  #queue: Promise<unknown> = Promise.resolve();
  /** Set when the running operation gave relays something to claim. */
  #notified = false;
  readonly #workspace: Workspace = {
    state: emptyState(),
    journal: new Journal(),
    notify: () => {
      this.#notified = true;
    },
  };
  readonly #files = new MemoryRepository(() => this.#workspace);
  readonly #listeners = new Set<() => void>();
  readonly #outbox: MemoryOutbox;
  readonly #guard: EndpointGuardOptions;

  /** @throws StorageConfigError when `secretsKey` is given but not 32 bytes */
  constructor(options: MemoryUploadStoreOptions = {}) {
    this.#outbox = new MemoryOutbox(() => this.#workspace, new WebhookSecretBox(options.secretsKey));
    this.#guard = { allowPrivateNetworks: options.allowPrivateNetworks === true };
  }

  /** Run `fn` alone, on the journal: undone when it throws; relays woken when it committed something to claim. */
  #atomic<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = async () => {
      this.#notified = false;
      const result = await this.#workspace.journal.run(fn);
      if (this.#notified) for (const listener of this.#listeners) setImmediate(listener);
      return result;
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** The repository, outside any transaction (each call is atomic on its own). */
  readonly repository: Locked<UploadRepository> = this.#wrap<UploadRepository>([
    'createFile',
    'getFile',
    'updateFile',
    'deleteFile',
    'deleteFiles',
    'failFiles',
    'listBatchFiles',
    'findFiles',
    'countFiles',
    'listFiles',
    'findFilesByStorageKey',
    'claimStorageKey',
    'findLiveStorageKeys',
    'createBatch',
    'getBatch',
    'updateBatch',
  ]);

  /** The emitter, outside any transaction. */
  readonly outbox: OutboxEmitter = {
    emit: (event) => this.#atomic(() => emitEvent(this.#workspace, event)),
  };

  #wrap<T>(methods: Array<keyof T & string>): T {
    const files = this.#files as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    return Object.fromEntries(
      methods.map((name) => [name, (...args: unknown[]) => this.#atomic(() => (files[name] as (...a: unknown[]) => Promise<unknown>).apply(files, args))]),
    ) as T;
  }

  transaction<T>(fn: (tx: UploadTransaction) => Promise<T>): Promise<T> {
    return this.#atomic(async () => {
      let open = true;
      const workspace = (): Workspace => {
        if (!open) throw new Error(ENDED);
        return this.#workspace;
      };
      const tx: UploadTransaction = {
        repository: new MemoryRepository(workspace),
        outbox: { emit: async (event) => emitEvent(workspace(), event) },
      };
      try {
        return await fn(tx);
      } finally {
        open = false;
      }
    });
  }

  /** Every event in the outbox, oldest first (for tests and the example relay). */
  events(): Promise<OutboxEvent[]> {
    return this.#atomic(() => [...this.#workspace.state.events.values()].map(eventOf));
  }

  claimDeliveries(options: ClaimOptions): Promise<ClaimedDelivery[]> {
    return this.#atomic(() => this.#outbox.claimDeliveries(options));
  }

  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]> {
    return this.#atomic(() => this.#outbox.completeDeliveries(items, now));
  }

  getEvent(id: string): Promise<OutboxDelivery | undefined> {
    return this.#atomic(() => this.#outbox.getEvent(id));
  }

  getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    return this.#atomic(() => this.#outbox.getDelivery(id));
  }

  listDeliveries(query?: DeliveryQuery): Promise<WebhookDelivery[]> {
    return this.#atomic(() => this.#outbox.listDeliveries(query));
  }

  redeliver(deliveryId: string, now?: Date): Promise<WebhookDelivery | undefined> {
    return this.#atomic(() => this.#outbox.redeliver(deliveryId, now));
  }

  redeliverEvent(eventId: string, now?: Date): Promise<WebhookDelivery[]> {
    return this.#atomic(() => this.#outbox.redeliverEvent(eventId, now));
  }

  recoverEndpoint(endpointId: string, options: { since: Date; now?: Date }): Promise<RecoveredEndpoint | undefined> {
    return this.#atomic(() => this.#outbox.recoverEndpoint(endpointId, options));
  }

  deleteDeliveredEvents(before: Date): Promise<number> {
    return this.#atomic(() => this.#outbox.deleteDeliveredEvents(before));
  }

  async createWebhookEndpoint(input: NewWebhookEndpoint): Promise<WebhookEndpoint> {
    const secret = await checkNewWebhookEndpoint(input, this.#guard);
    return this.#atomic(() => this.#outbox.createWebhookEndpoint(input, secret));
  }

  getWebhookEndpoint(id: string): Promise<WebhookEndpoint | undefined> {
    return this.#atomic(() => this.#outbox.getWebhookEndpoint(id));
  }

  listWebhookEndpoints(): Promise<WebhookEndpoint[]> {
    return this.#atomic(() => this.#outbox.listWebhookEndpoints());
  }

  setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined> {
    return this.#atomic(() => this.#outbox.setWebhookEndpointActive(id, isActive));
  }

  rotateWebhookSecret(id: string, options?: RotateSecretOptions): Promise<WebhookEndpoint | undefined> {
    return this.#atomic(() => this.#outbox.rotateWebhookSecret(id, options));
  }

  deleteWebhookEndpoint(id: string): Promise<void> {
    return this.#atomic(() => this.#outbox.deleteWebhookEndpoint(id));
  }

  async onEventCommitted(listener: () => void): Promise<() => Promise<void>> {
    // A distinct function per subscription, so subscribing the same listener twice works.
    const call = () => listener();
    this.#listeners.add(call);
    return async () => {
      this.#listeners.delete(call);
    };
  }
}
