/**
 * The ports the UploadService needs. Plain interfaces: the in-memory store in this package
 * implements them all; SQL stores implement them on a real transaction.
 */
import type { OutboxDelivery, OutboxEvent, UploadBatch, UploadFile, UploadFileStatus, WebhookEndpoint } from './model.js';

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

/** A page of files, newest first. */
export interface FilePage {
  limit: number;
  /** Only files with one of these statuses. @default every status */
  statuses?: UploadFileStatus[];
  /** Continue after this file (the last one of the previous page). */
  after?: Pick<UploadFile, 'createdAt' | 'id'>;
}

/**
 * The statuses of a live file. A live file holds its `storageKey` (when not ''): no two live
 * files have the same non-empty key (a UNIQUE index on the SQL stores). `failed` and `deleted`
 * files, and files whose key is '', hold nothing.
 */
export const LIVE_FILE_STATUSES: ReadonlyArray<UploadFileStatus> = Object.freeze(['uploading', 'stored', 'processed']);

/** The key `file` holds: its storage key while it is live and the key is not ''. */
export const heldStorageKey = (file: Pick<UploadFile, 'status' | 'storageKey'>): string | undefined =>
  LIVE_FILE_STATUSES.includes(file.status) && file.storageKey !== '' ? file.storageKey : undefined;

/**
 * Stores upload files and batches. It also holds the claim on storage keys: a key that a live
 * file (see {@link LIVE_FILE_STATUSES}) holds is that file's alone, so a service that claims a
 * key here before writing under it never replaces another upload's object.
 */
export interface UploadRepository {
  /**
   * Add a file.
   * @throws StorageKeyTakenError (nothing is stored) when `file` is live and another live file
   * holds its non-empty `storageKey`.
   */
  createFile(file: UploadFile): Promise<void>;
  getFile(id: string): Promise<UploadFile | undefined>;
  /**
   * Apply `patch` (and set `updatedAt`). With `expectedStatus`, only when the file still has
   * that status (compare-and-set, like `UPDATE … WHERE status = 'stored'`). Returns the
   * updated file, or undefined when it does not exist or its status differs.
   * @throws StorageKeyTakenError (nothing is changed) when the patched file would be live and
   * another live file holds its non-empty `storageKey`: a new key, or a status back to live.
   */
  updateFile(id: string, patch: UploadFilePatch, options?: { expectedStatus?: UploadFileStatus; now?: Date }): Promise<UploadFile | undefined>;
  /**
   * Atomically make `key` the `storageKey` of file `id` (and set `updatedAt` to `now`), when
   * no other live file holds `key`; the file's previous key is released. Claiming the key the
   * file already holds succeeds. Safe under real concurrency: of many concurrent claims of one
   * key, exactly one succeeds. Inside a transaction, a refused claim leaves the transaction usable.
   * @returns true when the file now holds `key`; false, changing nothing, when another live
   * file holds it, or when file `id` does not exist or is not live.
   * @example
   * if (!(await repository.claimStorageKey(file.id, 'uploads/2026/11/report.txt'))) {
   *   // taken: try 'uploads/2026/11/report-1.txt'
   * }
   */
  claimStorageKey(id: string, key: string, now?: Date): Promise<boolean>;
  /**
   * Which of `keys` a live file holds (one query on the SQL stores; it costs what `keys` has,
   * not what is stored).
   * @example
   * await repository.findLiveStorageKeys(['a.txt', 'b.txt']) // Set { 'a.txt' }: only a.txt is held
   */
  findLiveStorageKeys(keys: readonly string[]): Promise<Set<string>>;
  deleteFile(id: string): Promise<void>;
  listBatchFiles(batchId: string): Promise<UploadFile[]>;
  /** Oldest first. */
  findFiles(query: FileQuery): Promise<UploadFile[]>;
  countFiles(query: Omit<FileQuery, 'limit'>): Promise<number>;
  /** Newest first: by `createdAt`, then `id`, descending. */
  listFiles(page: FilePage): Promise<UploadFile[]>;
  /** Every file whose `storageKey` is `key`, live or not. */
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

/** What `claimEvents` records on an event whose last allowed attempt never reported back. */
export const LEASE_EXPIRED_MESSAGE = 'lease expired after the last attempt (the relay stopped before it reported)';

/** How a delivery ended, as the relay records it. */
export type DeliveryOutcome =
  | { status: 'delivered' }
  /** Try again at `nextAttemptAt`. */
  | { status: 'pending'; nextAttemptAt: Date; errorMessage: string }
  | { status: 'failed'; errorMessage: string };

/** A claimed event and how its delivery ended. */
export interface CompletedDelivery {
  claimed: Pick<OutboxDelivery, 'id' | 'nextAttemptAt'>;
  outcome: DeliveryOutcome;
}

export interface ClaimOptions {
  /** Events due at or before this instant. */
  now: Date;
  /** At most this many events. */
  limit: number;
  /** The lease: claimed events are due again (for another relay) only after this instant. */
  leaseUntil: Date;
}

/** A new webhook endpoint. */
export interface NewWebhookEndpoint {
  url: string;
  /**
   * The key deliveries are signed with. A Standard Webhooks secret (`whsec_` + the base64 of
   * 24–64 bytes; the key is those bytes), or, as earlier versions stored them, any other
   * non-blank string, whose UTF-8 bytes are the key.
   * @default a new `whsec_` secret from `generateWebhookSecret()`; the returned endpoint holds it
   * @example { url: 'https://hooks.example.com/doorito' } // then give `endpoint.secret` to the receiver
   */
  secret?: string;
  /** @default [] (every event type) */
  eventTypes?: string[];
  /** @default true */
  isActive?: boolean;
}

/**
 * The outbox as the relay needs it: claim due events under a lease, record outcomes, and the
 * webhook endpoints. Every upload store implements it (memory, SQLite, Postgres).
 */
export interface OutboxStore {
  /**
   * In one short transaction: take up to `limit` pending events due at `now` (earliest due
   * first) that no other relay holds (`FOR UPDATE SKIP LOCKED` on Postgres), count an attempt
   * on each and set its `nextAttemptAt` to `leaseUntil`, so that no other relay takes it before
   * the lease ends. Pending events whose last attempt's lease ran out are marked `failed`.
   */
  claimEvents(options: ClaimOptions): Promise<OutboxDelivery[]>;
  /**
   * Record the outcome of a claimed event, only if the claim still holds: the event is pending
   * and its `nextAttemptAt` is the lease the claim returned. Returns false when the lease was
   * lost (it expired and another relay claimed the event), and then changes nothing.
   */
  completeEvent(claimed: Pick<OutboxDelivery, 'id' | 'nextAttemptAt'>, outcome: DeliveryOutcome, now: Date): Promise<boolean>;
  /**
   * {@link completeEvent} for a whole round at once (one statement on Postgres, one
   * transaction on SQLite). Returns, in order, whether each outcome was recorded.
   */
  completeEvents(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]>;
  getEvent(id: string): Promise<OutboxDelivery | undefined>;
  /** Delete delivered events delivered before `before`; returns how many. */
  deleteDeliveredEvents(before: Date): Promise<number>;
  createWebhookEndpoint(endpoint: NewWebhookEndpoint): Promise<WebhookEndpoint>;
  /** Every endpoint, active or not, oldest first. */
  listWebhookEndpoints(): Promise<WebhookEndpoint[]>;
  /** Activate or deactivate; undefined when there is no such endpoint. */
  setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined>;
  deleteWebhookEndpoint(id: string): Promise<void>;
  /**
   * Call `listener` soon after an event is committed, so a relay need not wait for its next
   * poll (LISTEN/NOTIFY on Postgres; in-process elsewhere). Resolves to an unsubscribe function.
   */
  onEventCommitted?(listener: () => void): Promise<() => Promise<void>>;
}
