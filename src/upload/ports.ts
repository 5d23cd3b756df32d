/**
 * The ports the UploadService needs. Plain interfaces: the in-memory store in this package
 * implements them all; SQL stores implement them on a real transaction.
 */
import type {
  DeliveryAttempt,
  OutboxDelivery,
  OutboxEvent,
  UploadBatch,
  UploadErrorCode,
  UploadFile,
  UploadFileStatus,
  WebhookDelivery,
  WebhookDeliveryStatus,
  WebhookEndpoint,
} from './model.js';

/** Fields of an upload file that may change after it is created. */
export type UploadFilePatch = Partial<
  Pick<UploadFile, 'storageKey' | 'contentType' | 'sizeBytes' | 'sha256' | 'status' | 'errorCode' | 'errorMessage' | 'metadata' | 'directUpload'>
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
  /**
   * Delete these files (one statement on the SQL stores); ids that do not exist are skipped.
   * Their keys are released. Costs what `ids` has, not what is stored.
   * @returns how many files were deleted
   */
  deleteFiles(ids: readonly string[]): Promise<number>;
  /**
   * Mark these files `failed` with `error` (and set `updatedAt` to `now`), only those whose
   * status is one of `expectedStatuses` when given (compare-and-set, one statement on the SQL
   * stores). A failed file holds no key, so this never conflicts with another file's key.
   * @returns the ids of the files that changed
   * @example
   * await repository.failFiles(ids, { code: 'interrupted', message: 'The upload never finished.' }, { expectedStatuses: ['uploading'] })
   */
  failFiles(
    ids: readonly string[],
    error: { code: UploadErrorCode; message: string },
    options?: { expectedStatuses?: readonly UploadFileStatus[]; now?: Date },
  ): Promise<string[]>;
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

/** The `lastError` of a delivery whose last allowed attempt never reported back. */
export const LEASE_EXPIRED_MESSAGE = 'lease expired after the last attempt (the relay stopped before it reported)';

/** Event types of the relay's own notices; endpoints get them only by listing them. */
export const NOTICE_EVENT_PREFIX = 'webhook.';

/**
 * Whether `endpoint` (active or not) subscribes to `eventType`: listed in its `eventTypes`, or
 * `eventTypes` empty and not a `webhook.*` notice (so a failing endpoint is never sent
 * notices about itself unless it asks). The SQL stores apply the same rule in SQL.
 */
export const endpointSubscribes = (endpoint: Pick<WebhookEndpoint, 'eventTypes'>, eventType: string): boolean =>
  endpoint.eventTypes.length === 0 ? !eventType.startsWith(NOTICE_EVENT_PREFIX) : endpoint.eventTypes.includes(eventType);

/** How one attempt of a delivery ended, as the relay records it. */
export type DeliveryOutcome =
  | { status: 'delivered' }
  /** Try again at `nextAttemptAt`. */
  | { status: 'pending'; nextAttemptAt: Date; errorMessage: string }
  /** A dead letter: the schedule ran out, or the endpoint is gone or disabled. */
  | { status: 'failed'; errorMessage: string };

/** A claimed delivery (one event to one endpoint), with what the relay needs to POST it. */
export interface ClaimedDelivery {
  /** Its state after the claim: `attempts` counts this one; `nextAttemptAt` is the lease. */
  delivery: WebhookDelivery;
  event: OutboxEvent;
  /** The endpoint as it is now (secrets decrypted), active or not. */
  endpoint: WebhookEndpoint;
}

/** A claimed delivery and how its attempt ended. */
export interface CompletedDelivery {
  /** The claim: `id` and the lease (`nextAttemptAt`) `claimDeliveries` returned. */
  claimed: Pick<WebhookDelivery, 'id' | 'nextAttemptAt'>;
  outcome: DeliveryOutcome;
  /** Appended to the attempt log (which keeps the last {@link ATTEMPT_LOG_LIMIT}); sets `lastStatus`, `lastDurationMs`. Absent when nothing was sent. */
  attempt?: DeliveryAttempt;
  /**
   * Endpoint health: `success` sets `lastSuccessAt` and clears `failingSince`; `failure` sets
   * `failingSince` (to `now`) unless already set. Absent: the endpoint is left as it is.
   */
  health?: 'success' | 'failure';
  /**
   * Disable the endpoint (410 Gone, failing for too long): `isActive` false, `disabledAt` now,
   * `disabledReason` this; and every other pending delivery to it `failed` with
   * `lastError` `endpoint disabled: <reason>`. Applied after every outcome of the round is
   * recorded, so it fails only deliveries the round did not attempt. Nothing happens when the
   * endpoint is already inactive.
   */
  disableEndpoint?: { reason: string };
  /**
   * Events to emit (idempotently, like {@link OutboxEmitter.emit}) in the same transaction as
   * this outcome, and only when it is recorded: the relay's `webhook.*` notices.
   */
  emit?: NewOutboxEvent[];
}

export interface ClaimOptions {
  /** Deliveries due at or before this instant. */
  now: Date;
  /** At most this many deliveries. */
  limit: number;
  /** The lease: claimed deliveries are due again (for another relay) only after this instant. */
  leaseUntil: Date;
}

/** Filters of {@link OutboxStore.listDeliveries}. */
export interface DeliveryQuery {
  status?: WebhookDeliveryStatus;
  endpointId?: string;
  eventId?: string;
  /** Deliveries created at or after this instant. */
  since?: Date;
  /** @default 100 */
  limit?: number;
}

/** Options of {@link OutboxStore.rotateWebhookSecret}. */
export interface RotateSecretOptions {
  /** How long deliveries also carry a signature with the old secret. @default 24 */
  overlapHours?: number;
  /** The new secret. @default a new one from `generateWebhookSecret()` */
  secret?: string;
  /** @default new Date() */
  now?: Date;
}

/** What {@link OutboxStore.recoverEndpoint} did. */
export interface RecoveredEndpoint {
  endpoint: WebhookEndpoint;
  /** Failed deliveries to it made due again. */
  requeued: number;
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
 * The outbox as the relay needs it: deliveries claimed under a lease, outcomes, webhook
 * endpoints, dead letters and redelivery. Every upload store implements it (memory, SQLite,
 * Postgres); `test/contract/outbox-store-contract.ts` is its conformance suite.
 *
 * Emitting an event (through the store's {@link OutboxEmitter}) creates, in the same
 * transaction, one `pending` delivery due at once for every active endpoint that
 * {@link endpointSubscribes} to it; an event that no active endpoint subscribes to is
 * `delivered` at once.
 */
export interface OutboxStore {
  /**
   * In one short transaction: take up to `limit` pending deliveries due at `now` (earliest due
   * first) that no other relay holds (`FOR UPDATE SKIP LOCKED` on Postgres), count an attempt on
   * each and set its `nextAttemptAt` to `leaseUntil`. Uses an index whatever the backlog.
   */
  claimDeliveries(options: ClaimOptions): Promise<ClaimedDelivery[]>;
  /**
   * Record a round of outcomes at once (one transaction). Each is recorded only if its claim
   * still holds (the delivery is pending and its `nextAttemptAt` is the claimed lease), and then
   * with its `attempt`, `health`, `disableEndpoint` and `emit`; the delivery's event gets the
   * status of all its deliveries (see {@link OutboxEventStatus}). Returns, in order, whether
   * each was recorded.
   */
  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]>;
  getEvent(id: string): Promise<OutboxDelivery | undefined>;
  getDelivery(id: string): Promise<WebhookDelivery | undefined>;
  /** Newest first (by `createdAt`, then `id`). */
  listDeliveries(query?: DeliveryQuery): Promise<WebhookDelivery[]>;
  /**
   * Make a delivery due again at `now`, whatever its status: `pending`, attempts 0 (its attempt
   * log stays), and its event `pending`. Undefined when there is no such delivery.
   */
  redeliver(deliveryId: string, now?: Date): Promise<WebhookDelivery | undefined>;
  /**
   * {@link redeliver} every delivery of the event, and add one for each active endpoint that
   * subscribes to it and has none. Returns the event's deliveries; empty when no such event.
   */
  redeliverEvent(eventId: string, now?: Date): Promise<WebhookDelivery[]>;
  /**
   * Activate the endpoint (clearing `disabledAt`, `disabledReason`, `failingSince`) and make its
   * failed deliveries created at or after `since` due again, as {@link redeliver} does.
   * Undefined when there is no such endpoint.
   */
  recoverEndpoint(endpointId: string, options: { since: Date; now?: Date }): Promise<RecoveredEndpoint | undefined>;
  /** Delete events delivered before `before` (and their deliveries); returns how many events. */
  deleteDeliveredEvents(before: Date): Promise<number>;
  createWebhookEndpoint(endpoint: NewWebhookEndpoint): Promise<WebhookEndpoint>;
  getWebhookEndpoint(id: string): Promise<WebhookEndpoint | undefined>;
  /** Every endpoint, active or not, oldest first. */
  listWebhookEndpoints(): Promise<WebhookEndpoint[]>;
  /**
   * Activate or deactivate by hand (activating clears `disabledAt` and `disabledReason`);
   * undefined when there is no such endpoint. Pending deliveries to an inactive endpoint fail
   * when claimed.
   */
  setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined>;
  /**
   * A new secret; the old one becomes `previousSecret` until `now + overlapHours` (replacing any
   * earlier previous secret). Undefined when there is no such endpoint.
   * @throws StorageConfigError when `secret` or `overlapHours` is not valid
   */
  rotateWebhookSecret(id: string, options?: RotateSecretOptions): Promise<WebhookEndpoint | undefined>;
  /** Delete the endpoint and its deliveries. */
  deleteWebhookEndpoint(id: string): Promise<void>;
  /**
   * Call `listener` soon after an event is committed, so a relay need not wait for its next
   * poll (LISTEN/NOTIFY on Postgres; in-process elsewhere). Resolves to an unsubscribe function.
   */
  onEventCommitted?(listener: () => void): Promise<() => Promise<void>>;
}
