/**
 * Rows to model objects, and the prepared-statement cache of one connection. Optional fields are
 * left out (not `undefined`) when their column is NULL, so what is read back equals what was
 * written.
 */
import type Database from 'better-sqlite3';
import type { OutboxDelivery, OutboxEvent, UploadBatch, UploadFile, WebhookEndpoint } from '../upload/model.js';

export type Row = Record<string, unknown>;

/** A Date as stored: INTEGER milliseconds since the epoch. */
export const ms = (date: Date): number => date.getTime();

/** Works whether or not the host turned on `safeIntegers` (bigint columns). */
const toDate = (value: unknown): Date => new Date(Number(value));

const isNull = (value: unknown): value is null | undefined => value === null || value === undefined;

const optionalString = <K extends string>(key: K, value: unknown): Partial<Record<K, string>> =>
  isNull(value) ? {} : ({ [key]: String(value) } as Record<K, string>);

const optionalDate = <K extends string>(key: K, value: unknown): Partial<Record<K, Date>> =>
  isNull(value) ? {} : ({ [key]: toDate(value) } as Record<K, Date>);

export function toFile(row: Row): UploadFile {
  return {
    id: String(row['id']),
    ...optionalString('batchId', row['batch_id']),
    ...optionalString('uploadedBy', row['uploaded_by']),
    storageKey: String(row['storage_key']),
    originalFilename: String(row['original_filename']),
    contentType: String(row['content_type']),
    sizeBytes: Number(row['size_bytes']),
    sha256: String(row['sha256']),
    metadata: JSON.parse(String(row['metadata'])) as Record<string, string>,
    status: row['status'] as UploadFile['status'],
    ...optionalString('errorCode', row['error_code']),
    ...optionalString('errorMessage', row['error_message']),
    createdAt: toDate(row['created_at']),
    updatedAt: toDate(row['updated_at']),
  };
}

export function toBatch(row: Row): UploadBatch {
  return {
    id: String(row['id']),
    ...optionalString('createdBy', row['created_by']),
    status: row['status'] as UploadBatch['status'],
    idempotencyKey: String(row['idempotency_key']),
    createdAt: toDate(row['created_at']),
    updatedAt: toDate(row['updated_at']),
  };
}

export function toEvent(row: Row): OutboxEvent {
  return {
    id: String(row['id']),
    aggregateType: String(row['aggregate_type']),
    aggregateId: String(row['aggregate_id']),
    eventType: String(row['event_type']),
    payload: JSON.parse(String(row['payload'])) as Record<string, unknown>,
    idempotencyKey: String(row['idempotency_key']),
    createdAt: toDate(row['created_at']),
  };
}

export function toDelivery(row: Row): OutboxDelivery {
  return {
    ...toEvent(row),
    status: row['status'] as OutboxDelivery['status'],
    attempts: Number(row['attempts']),
    maxAttempts: Number(row['max_attempts']),
    nextAttemptAt: toDate(row['next_attempt_at']),
    ...optionalDate('deliveredAt', row['delivered_at']),
    ...optionalString('errorMessage', row['error_message']),
    updatedAt: toDate(row['updated_at']),
  };
}

export function toEndpoint(row: Row): WebhookEndpoint {
  return {
    id: String(row['id']),
    url: String(row['url']),
    secret: String(row['secret']),
    eventTypes: JSON.parse(String(row['event_types'])) as string[],
    isActive: Number(row['is_active']) === 1,
    createdAt: toDate(row['created_at']),
  };
}

/** The statements of one connection, each prepared once (SQLite compiles them). */
export class Statements {
  readonly #cache = new Map<string, Database.Statement<unknown[], Row>>();

  constructor(readonly db: Database.Database) {}

  #prepare(sql: string): Database.Statement<unknown[], Row> {
    let statement = this.#cache.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare<unknown[], Row>(sql);
      this.#cache.set(sql, statement);
    }
    return statement;
  }

  run(sql: string, ...params: unknown[]): Database.RunResult {
    return this.#prepare(sql).run(...params);
  }

  one(sql: string, ...params: unknown[]): Row | undefined {
    return this.#prepare(sql).get(...params);
  }

  all(sql: string, ...params: unknown[]): Row[] {
    return this.#prepare(sql).all(...params);
  }
}
