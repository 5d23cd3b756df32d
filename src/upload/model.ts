/**
 * The upload model of Doorito PEP 0006. Names are camelCase here; event payload keys keep the
 * seed's snake_case.
 */

/** Life of an upload file. `uploading` exists before any byte is stored, so no object is untracked. */
export type UploadFileStatus = 'uploading' | 'stored' | 'processed' | 'failed' | 'deleted';

/** Stable codes of a failed upload file (`errorCode`). */
export type UploadErrorCode =
  | 'file_too_large'
  | 'file_type_not_allowed'
  | 'invalid_filename'
  | 'aborted'
  | 'storage_error'
  | (string & {});

export interface UploadFile {
  /** UUIDv7: time-ordered. */
  id: string;
  batchId?: string;
  uploadedBy?: string;
  /**
   * The storage key. A live record (uploading, stored, processed) holds it alone, from before
   * the first byte is stored: while `uploading` it is where the bytes go.
   */
  storageKey: string;
  originalFilename: string;
  contentType: string;
  sizeBytes: number;
  /** Hex sha256 of the stored bytes; empty until stored. */
  sha256: string;
  metadata: Record<string, string>;
  status: UploadFileStatus;
  errorCode?: UploadErrorCode;
  errorMessage?: string;
  /** Set on records created by `createDirectUpload()`: how the client sends the bytes to the storage. */
  directUpload?: DirectUploadState;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * How a direct upload (the client sends the bytes straight to the storage, not through the app)
 * was set up. Kept with the record so that every later step (presigning parts, completing,
 * aborting, maintenance) is authorised by the file id alone and checks what was declared.
 */
export interface DirectUploadState {
  /**
   * `put`: one presigned PUT (on the filesystem and in memory, the app's own signed upload URL);
   * `post`: a presigned POST form; `multipart`: an S3 multipart upload with presigned parts.
   */
  method: 'put' | 'post' | 'multipart';
  /** The declared size in bytes: the only size the presigned target accepts. */
  size: number;
  /** When the presigned target stops working. */
  expiresAt: Date;
  /** The declared MD5 of the bytes (base64, as in `Content-MD5`), bound into a PUT's signature. */
  md5?: string;
  /** The declared SHA-256 of the bytes (hex); completion refuses other bytes. */
  sha256?: string;
  /** The storage's multipart upload id (`multipart` only). */
  uploadId?: string;
  /** Bytes per part; the last part holds the rest (`multipart` only). */
  partSize?: number;
}

export type UploadBatchStatus = 'init' | 'in_progress' | 'complete' | 'partial' | 'failed';

export interface UploadBatch {
  id: string;
  createdBy?: string;
  status: UploadBatchStatus;
  /** The same key always names the same batch. */
  idempotencyKey: string;
  createdAt: Date;
  updatedAt: Date;
}

/** An event written to the outbox, in the same transaction as the state change it reports. */
export interface OutboxEvent<Payload = Record<string, unknown>> {
  id: string;
  aggregateType: string;
  aggregateId: string;
  eventType: string;
  payload: Payload;
  /** Unique per `eventType`. */
  idempotencyKey: string;
  createdAt: Date;
}

/** Payload of `file.stored`. */
export interface FileStoredPayload {
  file_id: string;
  original_filename: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
  /** A shareable URL, captured at emission time. */
  url: string;
  storage_key: string;
  /** ISO 8601; present when `url` is presigned and stops working then. */
  url_expires_at?: string;
}

/** Payload of `file.expiring`: the same, plus when the file will be deleted. */
export interface FileExpiringPayload extends FileStoredPayload {
  /** ISO 8601: when the file passes its TTL and cleanup deletes it. */
  expires_at: string;
}

/**
 * Delivery state of an outbox event, over all its deliveries: `pending` while any is pending,
 * then `failed` when any failed (see {@link WebhookDelivery}), else `delivered` (also when no
 * endpoint matched it).
 */
export type OutboxEventStatus = 'pending' | 'delivered' | 'failed';

/** An outbox event with its delivery state. */
export interface OutboxDelivery<Payload = Record<string, unknown>> extends OutboxEvent<Payload> {
  status: OutboxEventStatus;
  /** When its last delivery succeeded (`delivered` only). */
  deliveredAt?: Date;
  /** The last delivery error of a `failed` event. */
  errorMessage?: string;
  updatedAt: Date;
}

/**
 * State of one delivery (one event to one endpoint): `pending` (due at `nextAttemptAt`),
 * `delivered` (a 2xx came back), `failed` (the schedule ran out, or the endpoint was
 * disabled, deactivated or deleted: a dead letter, until redelivered).
 */
export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One attempt of a delivery, as its attempt log keeps it. */
export interface DeliveryAttempt {
  /** When the POST started. */
  at: Date;
  /** The HTTP status, when a response came. */
  status?: number;
  /** Why it failed: `HTTP 500`, `timed out after 30000 ms`, `ECONNREFUSED`, … */
  error?: string;
  durationMs: number;
}

/** How many attempts a delivery's log keeps: the most recent ones. */
export const ATTEMPT_LOG_LIMIT = 10;

/**
 * One event's delivery to one endpoint, with its own attempts and schedule. Created when the
 * event is emitted, for every active endpoint it matches then.
 */
export interface WebhookDelivery {
  id: string;
  eventId: string;
  eventType: string;
  endpointId: string;
  status: WebhookDeliveryStatus;
  /** Attempts started since it was created or last redelivered (a claim counts as one). */
  attempts: number;
  /** When it is due (`pending`); while a relay holds it, the end of that relay's lease. */
  nextAttemptAt: Date;
  /** The HTTP status of the last attempt, when a response came. */
  lastStatus?: number;
  /** Why the last attempt (or the delivery) failed. */
  lastError?: string;
  lastDurationMs?: number;
  /** The last {@link ATTEMPT_LOG_LIMIT} attempts, oldest first. */
  attemptLog: DeliveryAttempt[];
  createdAt: Date;
  updatedAt: Date;
  deliveredAt?: Date;
}

/** Where the relay POSTs events. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  /**
   * The signing secret (the HMAC-SHA256 key of `webhook-signature`): `whsec_…` as generated, or
   * the raw string an earlier version stored. Give it to the receiver; never log it. Stores
   * configured with a `secretsKey` keep it encrypted and hand it out decrypted.
   */
  secret: string;
  /**
   * The secret before the last {@link OutboxStore.rotateWebhookSecret}, while its overlap lasts:
   * until `previousSecretExpiresAt`, deliveries are signed with both.
   */
  previousSecret?: string;
  previousSecretExpiresAt?: Date;
  /** Event types sent to this endpoint; empty means every type except `webhook.*` notices. */
  eventTypes: string[];
  /** False when deactivated by hand or disabled by the relay (then `disabledAt` is set). */
  isActive: boolean;
  /** When the relay disabled it (410 Gone, or failing for too long), and why. */
  disabledAt?: Date;
  disabledReason?: string;
  /** The first failed attempt since its last success; unset while it succeeds. */
  failingSince?: Date;
  lastSuccessAt?: Date;
  createdAt: Date;
}
