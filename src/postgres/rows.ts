/** Rows of the Postgres tables, mapped to the model (snake_case columns, NULL → absent). */
import type { OutboxDelivery, OutboxEvent, UploadBatch, UploadFile, WebhookEndpoint } from '../upload/model.js';

export type Row = Record<string, unknown>;

const optional = <K extends string>(key: K, value: unknown): Partial<Record<K, string>> =>
  value === null || value === undefined ? {} : ({ [key]: String(value) } as Record<K, string>);

/** Ids are uuid columns: anything else cannot exist, and Postgres would reject it as a type error. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/iu;
export const isUuid = (id: string): boolean => UUID.test(id);

export function toFile(row: Row): UploadFile {
  return {
    id: String(row['id']),
    ...optional('batchId', row['batch_id']),
    ...optional('uploadedBy', row['uploaded_by']),
    storageKey: String(row['storage_key']),
    originalFilename: String(row['original_filename']),
    contentType: String(row['content_type']),
    sizeBytes: Number(row['size_bytes']),
    sha256: String(row['sha256']),
    metadata: row['metadata'] as Record<string, string>,
    status: row['status'] as UploadFile['status'],
    ...optional('errorCode', row['error_code']),
    ...optional('errorMessage', row['error_message']),
    createdAt: row['created_at'] as Date,
    updatedAt: row['updated_at'] as Date,
  };
}

export function toBatch(row: Row): UploadBatch {
  return {
    id: String(row['id']),
    ...optional('createdBy', row['created_by']),
    status: row['status'] as UploadBatch['status'],
    idempotencyKey: String(row['idempotency_key']),
    createdAt: row['created_at'] as Date,
    updatedAt: row['updated_at'] as Date,
  };
}

export function toEvent(row: Row): OutboxEvent {
  return {
    id: String(row['id']),
    aggregateType: String(row['aggregate_type']),
    aggregateId: String(row['aggregate_id']),
    eventType: String(row['event_type']),
    payload: row['payload'] as Record<string, unknown>,
    idempotencyKey: String(row['idempotency_key']),
    createdAt: row['created_at'] as Date,
  };
}

export function toDelivery(row: Row): OutboxDelivery {
  return {
    ...toEvent(row),
    status: row['status'] as OutboxDelivery['status'],
    attempts: Number(row['attempts']),
    maxAttempts: Number(row['max_attempts']),
    nextAttemptAt: row['next_attempt_at'] as Date,
    ...(row['delivered_at'] instanceof Date ? { deliveredAt: row['delivered_at'] } : {}),
    ...optional('errorMessage', row['error_message']),
    updatedAt: row['updated_at'] as Date,
  };
}

export function toEndpoint(row: Row): WebhookEndpoint {
  return {
    id: String(row['id']),
    url: String(row['url']),
    secret: String(row['secret']),
    eventTypes: [...(row['event_types'] as string[])],
    isActive: Boolean(row['is_active']),
    createdAt: row['created_at'] as Date,
  };
}
