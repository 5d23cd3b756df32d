import { StorageKeyTakenError } from './errors.js';
import { WebhookSecretBox, type SecretsKey } from '../outbox/secret-box.js';
import { checkNewWebhookEndpoint, type EndpointGuardOptions } from './webhook-endpoint.js';
import { emitEvent, emptyOutboxState, eventOf, MemoryOutbox, type OutboxState } from './memory-outbox.js';
import type { OutboxDelivery, OutboxEvent, UploadBatch, UploadFile, WebhookDelivery, WebhookEndpoint } from './model.js';
import {
  heldStorageKey,
  LIVE_FILE_STATUSES,
  type ClaimedDelivery,
  type ClaimOptions,
  type CompletedDelivery,
  type DeliveryQuery,
  type EmitResult,
  type FilePage,
  type FileQuery,
  type NewOutboxEvent,
  type NewWebhookEndpoint,
  type OutboxEmitter,
  type OutboxStore,
  type RecoveredEndpoint,
  type RotateSecretOptions,
  type UnitOfWork,
  type UploadFilePatch,
  type UploadRepository,
  type UploadTransaction,
} from './ports.js';

interface State extends OutboxState {
  files: Map<string, UploadFile>;
  /** The non-empty storage key of every live file, to that file's id (the UNIQUE index of the SQL stores). */
  liveKeys: Map<string, string>;
  batches: Map<string, UploadBatch>;
}

const copy = <T>(value: T): T => structuredClone(value);

function matches(file: UploadFile, query: Omit<FileQuery, 'limit'>): boolean {
  return (
    query.statuses.includes(file.status) &&
    file.createdAt < query.createdBefore &&
    (query.createdFrom === undefined || file.createdAt >= query.createdFrom)
  );
}

/** The repository and emitter logic over one state; callers hold the store's lock. */
class StateView implements UploadRepository, OutboxEmitter {
  /** New events added through this view (a commit with any wakes the relay). */
  emitted = 0;

  constructor(private readonly state: () => State) {}

  async createFile(file: UploadFile): Promise<void> {
    if (this.state().files.has(file.id)) throw new Error(`upload file ${file.id} already exists`);
    this.#checkKey(file.id, file);
    this.#put(copy(file));
  }

  /** Throws StorageKeyTakenError when another live file holds the key that `file` (as file `id`) would hold. */
  #checkKey(id: string, file: Pick<UploadFile, 'status' | 'storageKey'>): void {
    const key = heldStorageKey(file);
    if (key === undefined) return;
    const holder = this.state().liveKeys.get(key);
    if (holder !== undefined && holder !== id) throw new StorageKeyTakenError(key);
  }

  /** Store `file`, moving its claim in the key index from its previous version's key. */
  #put(file: UploadFile): void {
    const { files, liveKeys } = this.state();
    const previous = files.get(file.id);
    const released = previous === undefined ? undefined : heldStorageKey(previous);
    if (released !== undefined && liveKeys.get(released) === file.id) liveKeys.delete(released);
    files.set(file.id, file);
    const held = heldStorageKey(file);
    if (held !== undefined) liveKeys.set(held, file.id);
  }

  async getFile(id: string): Promise<UploadFile | undefined> {
    const file = this.state().files.get(id);
    return file === undefined ? undefined : copy(file);
  }

  async updateFile(id: string, patch: UploadFilePatch, options: { expectedStatus?: UploadFile['status']; now?: Date } = {}) {
    const file = this.state().files.get(id);
    if (file === undefined) return undefined;
    if (options.expectedStatus !== undefined && file.status !== options.expectedStatus) return undefined;
    const updated: UploadFile = { ...file, ...copy(patch), updatedAt: options.now ?? new Date() };
    this.#checkKey(id, updated);
    this.#put(updated);
    return copy(updated);
  }

  async claimStorageKey(id: string, key: string, now?: Date): Promise<boolean> {
    const file = this.state().files.get(id);
    if (file === undefined || !LIVE_FILE_STATUSES.includes(file.status)) return false;
    const holder = key === '' ? undefined : this.state().liveKeys.get(key);
    if (holder !== undefined && holder !== id) return false;
    this.#put({ ...file, storageKey: key, updatedAt: now ?? new Date() });
    return true;
  }

  async findLiveStorageKeys(keys: readonly string[]): Promise<Set<string>> {
    const { liveKeys } = this.state();
    return new Set(keys.filter((key) => liveKeys.has(key)));
  }

  async deleteFile(id: string): Promise<void> {
    const { files, liveKeys } = this.state();
    const file = files.get(id);
    if (file === undefined) return;
    const held = heldStorageKey(file);
    if (held !== undefined && liveKeys.get(held) === id) liveKeys.delete(held);
    files.delete(id);
  }

  async listBatchFiles(batchId: string): Promise<UploadFile[]> {
    return [...this.state().files.values()].filter((f) => f.batchId === batchId).map(copy);
  }

  async findFiles(query: FileQuery): Promise<UploadFile[]> {
    return [...this.state().files.values()]
      .filter((f) => matches(f, query))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      .slice(0, query.limit)
      .map(copy);
  }

  async countFiles(query: Omit<FileQuery, 'limit'>): Promise<number> {
    return [...this.state().files.values()].filter((f) => matches(f, query)).length;
  }

  async listFiles(page: FilePage): Promise<UploadFile[]> {
    const newer = (a: Pick<UploadFile, 'createdAt' | 'id'>, b: Pick<UploadFile, 'createdAt' | 'id'>) =>
      b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
    const after = page.after;
    return [...this.state().files.values()]
      .filter((f) => (page.statuses === undefined || page.statuses.includes(f.status)) && (after === undefined || newer(after, f) < 0))
      .sort(newer)
      .slice(0, page.limit)
      .map(copy);
  }

  async findFilesByStorageKey(key: string): Promise<UploadFile[]> {
    return [...this.state().files.values()].filter((f) => f.storageKey === key).map(copy);
  }

  async createBatch(batch: UploadBatch): Promise<UploadBatch> {
    const existing = [...this.state().batches.values()].find((b) => b.idempotencyKey === batch.idempotencyKey);
    if (existing !== undefined) return copy(existing);
    this.state().batches.set(batch.id, copy(batch));
    return copy(batch);
  }

  async getBatch(id: string): Promise<UploadBatch | undefined> {
    const batch = this.state().batches.get(id);
    return batch === undefined ? undefined : copy(batch);
  }

  async updateBatch(id: string, patch: Pick<UploadBatch, 'status'>, now?: Date): Promise<UploadBatch | undefined> {
    const batch = this.state().batches.get(id);
    if (batch === undefined) return undefined;
    const updated = { ...batch, ...patch, updatedAt: now ?? new Date() };
    this.state().batches.set(id, updated);
    return copy(updated);
  }

  async emit(input: NewOutboxEvent): Promise<EmitResult> {
    const result = emitEvent(this.state(), input);
    if (!result.duplicate) this.emitted += 1;
    return result;
  }
}

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

/**
 * In-memory upload repository, outbox, unit of work and relay store: the reference
 * implementation of the ports, and the test double. A transaction works on a copy of the state
 * (the key index included) and publishes it only when `fn` resolves, so a throw rolls
 * everything back. Operations are serialized.
 *
 * @example
 * const store = new MemoryUploadStore()
 * const service = new UploadService({ storage, repository: store.repository, unitOfWork: store })
 * const relay = new OutboxRelay({ store })
 */
export class MemoryUploadStore implements UnitOfWork, OutboxStore {
  #state: State = { files: new Map(), liveKeys: new Map(), batches: new Map(), ...emptyOutboxState() };
  #queue: Promise<unknown> = Promise.resolve();
  readonly #view = new StateView(() => this.#state);
  readonly #listeners = new Set<() => void>();
  readonly #outbox: MemoryOutbox;
  readonly #guard: EndpointGuardOptions;

  /** @throws StorageConfigError when `secretsKey` is given but not 32 bytes */
  constructor(options: MemoryUploadStoreOptions = {}) {
    this.#outbox = new MemoryOutbox(() => this.#state, new WebhookSecretBox(options.secretsKey), () => this.#wake());
    this.#guard = { allowPrivateNetworks: options.allowPrivateNetworks === true };
  }

  #wake(): void {
    for (const listener of this.#listeners) setImmediate(listener);
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The repository, outside any transaction (each call is atomic on its own). */
  readonly repository: Locked<UploadRepository> = this.#wrap<UploadRepository>([
    'createFile',
    'getFile',
    'updateFile',
    'deleteFile',
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
    emit: (event) => this.#commit((view) => view.emit(event)),
  };

  #wrap<T>(methods: Array<keyof T & string>): T {
    const view = this.#view as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    return Object.fromEntries(
      methods.map((name) => [name, (...args: unknown[]) => this.#locked(() => (view[name] as (...a: unknown[]) => Promise<unknown>)(...args))]),
    ) as T;
  }

  /** Run `fn` on a draft of the state; publish the draft when it resolves, and wake listeners if it emitted. */
  #commit<T>(fn: (view: StateView) => Promise<T>): Promise<T> {
    return this.#locked(async () => {
      const draft: State = copy(this.#state);
      const view = new StateView(() => draft);
      const result = await fn(view);
      this.#state = draft;
      if (view.emitted > 0) this.#wake();
      return result;
    });
  }

  transaction<T>(fn: (tx: UploadTransaction) => Promise<T>): Promise<T> {
    return this.#commit((view) => fn({ repository: view, outbox: view }));
  }

  /** Every event in the outbox, oldest first (for tests and the example relay). */
  async events(): Promise<OutboxEvent[]> {
    return this.#locked(async () => [...this.#state.events.values()].map(eventOf));
  }

  claimDeliveries(options: ClaimOptions): Promise<ClaimedDelivery[]> {
    return this.#locked(async () => this.#outbox.claimDeliveries(options));
  }

  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]> {
    return this.#locked(async () => this.#outbox.completeDeliveries(items, now));
  }

  getEvent(id: string): Promise<OutboxDelivery | undefined> {
    return this.#locked(async () => this.#outbox.getEvent(id));
  }

  getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    return this.#locked(async () => this.#outbox.getDelivery(id));
  }

  listDeliveries(query?: DeliveryQuery): Promise<WebhookDelivery[]> {
    return this.#locked(async () => this.#outbox.listDeliveries(query));
  }

  redeliver(deliveryId: string, now?: Date): Promise<WebhookDelivery | undefined> {
    return this.#locked(async () => this.#outbox.redeliver(deliveryId, now));
  }

  redeliverEvent(eventId: string, now?: Date): Promise<WebhookDelivery[]> {
    return this.#locked(async () => this.#outbox.redeliverEvent(eventId, now));
  }

  recoverEndpoint(endpointId: string, options: { since: Date; now?: Date }): Promise<RecoveredEndpoint | undefined> {
    return this.#locked(async () => this.#outbox.recoverEndpoint(endpointId, options));
  }

  deleteDeliveredEvents(before: Date): Promise<number> {
    return this.#locked(async () => this.#outbox.deleteDeliveredEvents(before));
  }

  async createWebhookEndpoint(input: NewWebhookEndpoint): Promise<WebhookEndpoint> {
    const secret = await checkNewWebhookEndpoint(input, this.#guard);
    return this.#locked(async () => this.#outbox.createWebhookEndpoint(input, secret));
  }

  getWebhookEndpoint(id: string): Promise<WebhookEndpoint | undefined> {
    return this.#locked(async () => this.#outbox.getWebhookEndpoint(id));
  }

  listWebhookEndpoints(): Promise<WebhookEndpoint[]> {
    return this.#locked(async () => this.#outbox.listWebhookEndpoints());
  }

  setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined> {
    return this.#locked(async () => this.#outbox.setWebhookEndpointActive(id, isActive));
  }

  rotateWebhookSecret(id: string, options?: RotateSecretOptions): Promise<WebhookEndpoint | undefined> {
    return this.#locked(async () => this.#outbox.rotateWebhookSecret(id, options));
  }

  deleteWebhookEndpoint(id: string): Promise<void> {
    return this.#locked(async () => this.#outbox.deleteWebhookEndpoint(id));
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
