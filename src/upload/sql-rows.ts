/**
 * Rows of the SQL stores' tables (snake_case columns) mapped to the model, for every SQL
 * adapter: only how a column holds an instant, a JSON value and a boolean differs between them.
 * Optional fields are left out (not `undefined`) when their column is NULL, so what is read
 * back equals what was written.
 */
import type {
  DeliveryAttempt,
  DirectUploadState,
  OutboxDelivery,
  OutboxEvent,
  UploadBatch,
  UploadFile,
  WebhookDelivery,
  WebhookEndpoint,
} from './model.js';
import { LIVE_FILE_STATUSES, type UploadFilePatch } from './ports.js';

export type Row = Record<string, unknown>;

/** How one database returns instants, JSON values (objects and lists) and booleans. */
export interface RowCodec {
  date(value: unknown): Date;
  json(value: unknown): unknown;
  bool(value: unknown): boolean;
}

/** The column of each patchable file field. */
export const FILE_COLUMNS: Record<keyof UploadFilePatch, string> = {
  storageKey: 'storage_key',
  contentType: 'content_type',
  sizeBytes: 'size_bytes',
  sha256: 'sha256',
  status: 'status',
  errorCode: 'error_code',
  errorMessage: 'error_message',
  metadata: 'metadata',
  directUpload: 'direct_upload',
};

/**
 * The live-key rule in SQL, the same on every SQL store: a live file's status, the predicate of
 * the partial UNIQUE index on `upload_file (storage_key)`, and the index's name.
 */
export const LIVE_STATUS_PREDICATE = `status IN (${LIVE_FILE_STATUSES.map((status) => `'${status}'`).join(', ')})`;
export const LIVE_KEY_PREDICATE = `${LIVE_STATUS_PREDICATE} AND storage_key <> ''`;
export const LIVE_STORAGE_KEY_INDEX = 'upload_file_live_storage_key_idx';

/**
 * Whether this patch can make a file hold a key that another live file may hold: a new
 * non-empty key, or a status back to live. Other patches never meet the index.
 */
export const patchMayTakeKey = (patch: UploadFilePatch): boolean =>
  patch.storageKey !== '' && (patch.status === undefined ? patch.storageKey !== undefined : LIVE_FILE_STATUSES.includes(patch.status));

/** What the live-key migration records on an `uploading` file that another live file outranks. */
export const INTERRUPTED_MESSAGE =
  'The upload never finished: another live upload holds the same storage key (marked failed when the storage-key index was added).';

/**
 * The data fix before the UNIQUE index: older versions created `uploading` records with the key
 * they meant to use, so several live files may share one. Per key, the holder is the newest
 * stored/processed file, or else the newest uploading one; every other `uploading` file sharing
 * the key becomes `failed` / `interrupted`. Stored and processed files are never changed here.
 * `table` is the (qualified) table name; `now` and `message` are SQL expressions.
 */
export const failOutrankedUploadingSql = (table: string, now: string, message: string): string => `
  WITH ranked AS (
    SELECT id, status, row_number() OVER (
      PARTITION BY storage_key
      ORDER BY CASE WHEN status IN ('stored', 'processed') THEN 0 ELSE 1 END, created_at DESC, id DESC
    ) AS place
    FROM ${table}
    WHERE ${LIVE_KEY_PREDICATE}
  )
  UPDATE ${table} SET status = 'failed', error_code = 'interrupted', error_message = ${message}, updated_at = ${now}
  WHERE id IN (SELECT id FROM ranked WHERE place > 1 AND status = 'uploading')`;

/** Up to 10 keys still held by several live files (after the fix, only stored/processed ones), and how many there are. */
export const sharedLiveKeysSql = (table: string): string => `
  SELECT storage_key, count(*) OVER () AS total
  FROM (SELECT storage_key FROM ${table} WHERE ${LIVE_KEY_PREDICATE} GROUP BY storage_key HAVING count(*) > 1) AS shared
  ORDER BY storage_key
  LIMIT 10`;

/** The message of a live-key migration refused because stored/processed files share keys. */
export function sharedStoredKeysMessage(where: string, table: string, keys: readonly string[], total: number): string {
  const listed = keys.map((key) => JSON.stringify(key)).join(', ');
  const more = total > keys.length ? ` and ${total - keys.length} more` : '';
  return (
    `Cannot add the storage-key UNIQUE index to ${where}: ${total} storage key(s) are each held by several stored or ` +
    `processed upload files (${listed}${more}), so those uploads already replaced one another's object. Nothing was ` +
    `changed and the migration was not applied. For each key, keep the one file whose record matches the stored object ` +
    `and mark the others failed (UPDATE ${table} SET status = 'failed', error_code = 'duplicate_key' WHERE id IN (…)); ` +
    `then migrate again.`
  );
}

const isNull = (value: unknown): value is null | undefined => value === null || value === undefined;

export interface RowMappers {
  toFile(row: Row): UploadFile;
  toBatch(row: Row): UploadBatch;
  toEvent(row: Row): OutboxEvent;
  toDelivery(row: Row): OutboxDelivery;
  /** A `webhook_endpoint` row, its secrets as stored (sealed when the store encrypts). */
  toEndpoint(row: Row): WebhookEndpoint;
  /** A `webhook_delivery` row. */
  toWebhookDelivery(row: Row): WebhookDelivery;
}

/** The `attempt_log` column: a JSON list of `{ at: ISO 8601, status?, error?, durationMs }`. */
export function attemptLogJson(log: readonly DeliveryAttempt[]): string {
  return JSON.stringify(log.map((a) => ({ ...a, at: a.at.toISOString() })));
}

/**
 * The `direct_upload` column: `{ method, size, expiresAt: ISO 8601, md5?, sha256?, uploadId?, partSize? }`,
 * or NULL for a file without a direct upload. Only the declared members are written, so what is
 * read back equals what was written.
 */
export function directUploadJson(state: DirectUploadState | undefined): string | null {
  if (state === undefined) return null;
  const { method, size, expiresAt, md5, sha256, uploadId, partSize } = state;
  return JSON.stringify({ method, size, expiresAt: expiresAt.toISOString(), md5, sha256, uploadId, partSize });
}

const toDirectUpload = (value: Record<string, unknown>): DirectUploadState => ({
  method: value['method'] as DirectUploadState['method'],
  size: Number(value['size']),
  expiresAt: new Date(String(value['expiresAt'])),
  ...(typeof value['md5'] === 'string' ? { md5: value['md5'] } : {}),
  ...(typeof value['sha256'] === 'string' ? { sha256: value['sha256'] } : {}),
  ...(typeof value['uploadId'] === 'string' ? { uploadId: value['uploadId'] } : {}),
  ...(typeof value['partSize'] === 'number' ? { partSize: value['partSize'] } : {}),
});

/** A patched file field as its column holds it, the same on every SQL store: JSON as text, absent as NULL. */
export function filePatchValue(patch: UploadFilePatch, key: keyof UploadFilePatch): unknown {
  if (key === 'metadata') return JSON.stringify(patch.metadata);
  if (key === 'directUpload') return directUploadJson(patch.directUpload);
  return patch[key] ?? null;
}

const toAttempt = (value: Record<string, unknown>): DeliveryAttempt => ({
  at: new Date(String(value['at'])),
  ...(typeof value['status'] === 'number' ? { status: value['status'] } : {}),
  ...(typeof value['error'] === 'string' ? { error: value['error'] } : {}),
  durationMs: Number(value['durationMs']),
});

export function rowMappers(codec: RowCodec): RowMappers {
  const optional = <K extends string>(key: K, value: unknown): Partial<Record<K, string>> =>
    isNull(value) ? {} : ({ [key]: String(value) } as Record<K, string>);
  const optionalDate = <K extends string>(key: K, value: unknown): Partial<Record<K, Date>> =>
    isNull(value) ? {} : ({ [key]: codec.date(value) } as Record<K, Date>);

  const toEvent = (row: Row): OutboxEvent => ({
    id: String(row['id']),
    aggregateType: String(row['aggregate_type']),
    aggregateId: String(row['aggregate_id']),
    eventType: String(row['event_type']),
    payload: codec.json(row['payload']) as Record<string, unknown>,
    idempotencyKey: String(row['idempotency_key']),
    createdAt: codec.date(row['created_at']),
  });

  return {
    toFile: (row) => ({
      id: String(row['id']),
      ...optional('batchId', row['batch_id']),
      ...optional('uploadedBy', row['uploaded_by']),
      storageKey: String(row['storage_key']),
      originalFilename: String(row['original_filename']),
      contentType: String(row['content_type']),
      sizeBytes: Number(row['size_bytes']),
      sha256: String(row['sha256']),
      metadata: codec.json(row['metadata']) as Record<string, string>,
      status: row['status'] as UploadFile['status'],
      ...optional('errorCode', row['error_code']),
      ...optional('errorMessage', row['error_message']),
      ...(isNull(row['direct_upload']) ? {} : { directUpload: toDirectUpload(codec.json(row['direct_upload']) as Record<string, unknown>) }),
      createdAt: codec.date(row['created_at']),
      updatedAt: codec.date(row['updated_at']),
    }),
    toBatch: (row) => ({
      id: String(row['id']),
      ...optional('createdBy', row['created_by']),
      status: row['status'] as UploadBatch['status'],
      idempotencyKey: String(row['idempotency_key']),
      createdAt: codec.date(row['created_at']),
      updatedAt: codec.date(row['updated_at']),
    }),
    toEvent,
    toDelivery: (row) => ({
      ...toEvent(row),
      status: row['status'] as OutboxDelivery['status'],
      ...optionalDate('deliveredAt', row['delivered_at']),
      ...optional('errorMessage', row['error_message']),
      updatedAt: codec.date(row['updated_at']),
    }),
    toEndpoint: (row) => ({
      id: String(row['id']),
      url: String(row['url']),
      secret: String(row['secret']),
      ...optional('previousSecret', row['previous_secret']),
      ...optionalDate('previousSecretExpiresAt', row['previous_secret_expires_at']),
      eventTypes: [...(codec.json(row['event_types']) as string[])],
      isActive: codec.bool(row['is_active']),
      ...optionalDate('disabledAt', row['disabled_at']),
      ...optional('disabledReason', row['disabled_reason']),
      ...optionalDate('failingSince', row['failing_since']),
      ...optionalDate('lastSuccessAt', row['last_success_at']),
      createdAt: codec.date(row['created_at']),
    }),
    toWebhookDelivery: (row) => ({
      id: String(row['id']),
      eventId: String(row['event_id']),
      eventType: String(row['event_type']),
      endpointId: String(row['endpoint_id']),
      status: row['status'] as WebhookDelivery['status'],
      attempts: Number(row['attempts']),
      nextAttemptAt: codec.date(row['next_attempt_at']),
      ...(isNull(row['last_status']) ? {} : { lastStatus: Number(row['last_status']) }),
      ...optional('lastError', row['last_error']),
      ...(isNull(row['last_duration_ms']) ? {} : { lastDurationMs: Number(row['last_duration_ms']) }),
      attemptLog: (codec.json(row['attempt_log']) as Array<Record<string, unknown>>).map(toAttempt),
      createdAt: codec.date(row['created_at']),
      updatedAt: codec.date(row['updated_at']),
      ...optionalDate('deliveredAt', row['delivered_at']),
    }),
  };
}
