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
  createdAt: Date;
  updatedAt: Date;
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

/** Delivery state of an outbox event. */
export type OutboxEventStatus = 'pending' | 'delivered' | 'failed';

/** An outbox event with its delivery state, as the relay sees it. */
export interface OutboxDelivery<Payload = Record<string, unknown>> extends OutboxEvent<Payload> {
  status: OutboxEventStatus;
  /** Delivery attempts started so far (a claim counts as one). */
  attempts: number;
  /** After this many failed attempts the event is `failed`. @default 5 */
  maxAttempts: number;
  /** When the event is due; while a relay holds it, the end of that relay's lease. */
  nextAttemptAt: Date;
  deliveredAt?: Date;
  /** The last delivery error. */
  errorMessage?: string;
  updatedAt: Date;
}

/** Where the relay POSTs events. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  /**
   * The signing secret (the HMAC-SHA256 key of `webhook-signature`): `whsec_…` as generated, or
   * the raw string an earlier version stored. Give it to the receiver; never log it.
   */
  secret: string;
  /** Event types sent to this endpoint; empty means every type. */
  eventTypes: string[];
  isActive: boolean;
  createdAt: Date;
}
