/**
 * Rows of the SQL stores' tables (snake_case columns) mapped to the model, for every SQL
 * adapter: only how a column holds an instant, a JSON value and a boolean differs between them.
 * Optional fields are left out (not `undefined`) when their column is NULL, so what is read
 * back equals what was written.
 */
import type { OutboxDelivery, OutboxEvent, UploadBatch, UploadFile, WebhookEndpoint } from './model.js';
import type { UploadFilePatch } from './ports.js';

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
};

const isNull = (value: unknown): value is null | undefined => value === null || value === undefined;

export interface RowMappers {
  toFile(row: Row): UploadFile;
  toBatch(row: Row): UploadBatch;
  toEvent(row: Row): OutboxEvent;
  toDelivery(row: Row): OutboxDelivery;
  toEndpoint(row: Row): WebhookEndpoint;
}

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
      attempts: Number(row['attempts']),
      maxAttempts: Number(row['max_attempts']),
      nextAttemptAt: codec.date(row['next_attempt_at']),
      ...optionalDate('deliveredAt', row['delivered_at']),
      ...optional('errorMessage', row['error_message']),
      updatedAt: codec.date(row['updated_at']),
    }),
    toEndpoint: (row) => ({
      id: String(row['id']),
      url: String(row['url']),
      secret: String(row['secret']),
      eventTypes: [...(codec.json(row['event_types']) as string[])],
      isActive: codec.bool(row['is_active']),
      createdAt: codec.date(row['created_at']),
    }),
  };
}
