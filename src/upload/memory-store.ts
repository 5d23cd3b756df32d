import { randomUUID } from 'node:crypto';
import type { OutboxEvent, UploadBatch, UploadFile } from './model.js';
import {
  defaultIdempotencyKey,
  type EmitResult,
  type FileQuery,
  type NewOutboxEvent,
  type OutboxEmitter,
  type UnitOfWork,
  type UploadFilePatch,
  type UploadRepository,
  type UploadTransaction,
} from './ports.js';

interface State {
  files: Map<string, UploadFile>;
  batches: Map<string, UploadBatch>;
  events: OutboxEvent[];
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
  constructor(private readonly state: () => State) {}

  async createFile(file: UploadFile): Promise<void> {
    if (this.state().files.has(file.id)) throw new Error(`upload file ${file.id} already exists`);
    this.state().files.set(file.id, copy(file));
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
    this.state().files.set(id, updated);
    return copy(updated);
  }

  async deleteFile(id: string): Promise<void> {
    this.state().files.delete(id);
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
    const idempotencyKey = input.idempotencyKey ?? defaultIdempotencyKey(input);
    const existing = this.state().events.find((e) => e.eventType === input.eventType && e.idempotencyKey === idempotencyKey);
    if (existing !== undefined) return { event: copy(existing), duplicate: true };
    const event: OutboxEvent = {
      id: randomUUID(),
      aggregateType: input.aggregateType,
      aggregateId: input.aggregateId,
      eventType: input.eventType,
      payload: copy(input.payload),
      idempotencyKey,
      createdAt: new Date(),
    };
    this.state().events.push(event);
    return { event: copy(event), duplicate: false };
  }
}

type Locked<T> = { [K in keyof T]: T[K] };

/**
 * In-memory upload repository, outbox and unit of work: the reference implementation of the
 * ports, and the test double. A transaction works on a copy of the state and publishes it only
 * when `fn` resolves, so a throw rolls everything back. Operations are serialized.
 *
 * @example
 * const store = new MemoryUploadStore()
 * const service = new UploadService({ storage, store })
 */
export class MemoryUploadStore implements UnitOfWork {
  #state: State = { files: new Map(), batches: new Map(), events: [] };
  #queue: Promise<unknown> = Promise.resolve();
  readonly #view = new StateView(() => this.#state);

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
    'findFilesByStorageKey',
    'createBatch',
    'getBatch',
    'updateBatch',
  ]);

  /** The emitter, outside any transaction. */
  readonly outbox: OutboxEmitter = this.#wrap<OutboxEmitter>(['emit']);

  #wrap<T>(methods: Array<keyof T & string>): T {
    const view = this.#view as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    return Object.fromEntries(
      methods.map((name) => [name, (...args: unknown[]) => this.#locked(() => (view[name] as (...a: unknown[]) => Promise<unknown>)(...args))]),
    ) as T;
  }

  transaction<T>(fn: (tx: UploadTransaction) => Promise<T>): Promise<T> {
    return this.#locked(async () => {
      const draft: State = { files: copy(this.#state.files), batches: copy(this.#state.batches), events: copy(this.#state.events) };
      const view = new StateView(() => draft);
      const result = await fn({ repository: view, outbox: view });
      this.#state = draft;
      return result;
    });
  }

  /** Every event in the outbox, oldest first (for tests and the example relay). */
  async events(): Promise<OutboxEvent[]> {
    return this.#locked(async () => copy(this.#state.events));
  }
}
