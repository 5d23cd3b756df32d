/**
 * The ports the UploadService needs. Plain interfaces: the in-memory store in this package
 * implements them all; SQL stores implement them on a real transaction.
 */
import type { OutboxEvent, UploadBatch, UploadFile, UploadFileStatus } from './model.js';

/** Fields of an upload file that may change after it is created. */
export type UploadFilePatch = Partial<
  Pick<UploadFile, 'storageKey' | 'contentType' | 'sizeBytes' | 'sha256' | 'status' | 'errorCode' | 'errorMessage' | 'metadata'>
>;

export interface FileQuery {
  /** Files created strictly before this instant. */
  createdBefore: Date;
  /** Files created at or after this instant. */
  createdFrom?: Date;
  statuses: UploadFileStatus[];
  limit: number;
}

/** Stores upload files and batches. */
export interface UploadRepository {
  createFile(file: UploadFile): Promise<void>;
  getFile(id: string): Promise<UploadFile | undefined>;
  /**
   * Apply `patch` (and set `updatedAt`). With `expectedStatus`, only when the file still has
   * that status (compare-and-set, like `UPDATE … WHERE status = 'stored'`). Returns the
   * updated file, or undefined when it does not exist or its status differs.
   */
  updateFile(id: string, patch: UploadFilePatch, options?: { expectedStatus?: UploadFileStatus; now?: Date }): Promise<UploadFile | undefined>;
  deleteFile(id: string): Promise<void>;
  listBatchFiles(batchId: string): Promise<UploadFile[]>;
  /** Oldest first. */
  findFiles(query: FileQuery): Promise<UploadFile[]>;
  countFiles(query: Omit<FileQuery, 'limit'>): Promise<number>;
  /** Every file whose `storageKey` is `key`. */
  findFilesByStorageKey(key: string): Promise<UploadFile[]>;
  /** Create the batch, or return the existing one with the same `idempotencyKey`. */
  createBatch(batch: UploadBatch): Promise<UploadBatch>;
  getBatch(id: string): Promise<UploadBatch | undefined>;
  updateBatch(id: string, patch: Pick<UploadBatch, 'status'>, now?: Date): Promise<UploadBatch | undefined>;
}

/** What to emit; `id` and `createdAt` are assigned by the emitter. */
export interface NewOutboxEvent<Payload = Record<string, unknown>> {
  aggregateType: string;
  aggregateId: string;
  eventType: string;
  payload: Payload;
  /** @default `${aggregateType}:${aggregateId}` (unique per eventType) */
  idempotencyKey?: string;
}

export interface EmitResult {
  /** The event in the outbox: the new one, or the one already there. */
  event: OutboxEvent;
  /** True when an event with the same eventType and idempotencyKey already existed: nothing was added. */
  duplicate: boolean;
}

/** Writes events to the outbox. */
export interface OutboxEmitter {
  emit(event: NewOutboxEvent): Promise<EmitResult>;
}

/** A repository and an emitter bound to one transaction. */
export interface UploadTransaction {
  repository: UploadRepository;
  outbox: OutboxEmitter;
}

/**
 * The transaction boundary: everything `fn` does through `tx` commits together when it
 * resolves, and is rolled back when it throws.
 */
export interface UnitOfWork {
  transaction<T>(fn: (tx: UploadTransaction) => Promise<T>): Promise<T>;
}

/** The default idempotency key of an event. */
export const defaultIdempotencyKey = (event: Pick<NewOutboxEvent, 'aggregateType' | 'aggregateId'>): string =>
  `${event.aggregateType}:${event.aggregateId}`;
