/**
 * The repository and emitter statements of the Postgres store, over the pool (each statement
 * commits on its own) or over one transaction's connection.
 */
import { StorageKeyTakenError } from '../upload/errors.js';
import type { UploadBatch, UploadErrorCode, UploadFile, UploadFileStatus } from '../upload/model.js';
import {
  defaultIdempotencyKey,
  heldStorageKey,
  type EmitResult,
  type FilePage,
  type FileQuery,
  type NewOutboxEvent,
  type OutboxEmitter,
  type UploadFilePatch,
  type UploadRepository,
} from '../upload/ports.js';
import { directUploadJson, FILE_COLUMNS, filePatchValue, LIVE_KEY_PREDICATE, LIVE_STATUS_PREDICATE, patchMayTakeKey } from '../upload/sql-rows.js';
import { emitEvents } from './delivery-sql.js';
import type { Queryable } from './migrations.js';
import { isUuid, toBatch, toEvent, toFile, type Row } from './rows.js';
import { isLiveKeyViolation } from './sql-errors.js';

/** The savepoint around a statement that may meet the live storage-key index, in a transaction. */
const SAVEPOINT = 'doorito_storage_key';

/**
 * A transaction's connection, one statement at a time in call order. A savepoint sequence
 * holds it from SAVEPOINT to RELEASE, so that no other statement of the same transaction (say,
 * from a `Promise.all`) lands inside the savepoint and is rolled back with it.
 */
export class TransactionConnection implements Queryable {
  #tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly client: Queryable) {}

  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]) {
    return this.exclusive((db) => db.query<R>(text, values));
  }

  /** Run `fn` on the connection with nothing else of this transaction in between. */
  exclusive<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    const run = this.#tail.then(() => fn(this.client));
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/** Repository and emitter statements over one connection (or the pool). */
export class PostgresView implements UploadRepository, OutboxEmitter {
  constructor(
    private readonly db: Queryable,
    private readonly s: string,
    /** The schema's plain name: NOTIFY payloads start with it, so each store wakes only for its own events. */
    private readonly schemaName: string,
  ) {}

  /**
   * Run `statement`; a violation of the live storage-key index becomes `onTaken` instead. In a
   * transaction, inside a savepoint: on Postgres a failed statement aborts the whole
   * transaction, and a taken key must leave it usable, as it does on SQLite and in memory.
   * https://www.postgresql.org/docs/current/sql-savepoint.html
   */
  async #keyed<T>(statement: (db: Queryable) => Promise<T>, onTaken: (db: Queryable, error: unknown) => Promise<T>): Promise<T> {
    const { db } = this;
    if (!(db instanceof TransactionConnection)) {
      try {
        return await statement(db);
      } catch (error) {
        if (!isLiveKeyViolation(error)) throw error;
        return onTaken(db, error);
      }
    }
    return db.exclusive(async (conn) => {
      await conn.query(`SAVEPOINT ${SAVEPOINT}`);
      let result: T;
      try {
        result = await statement(conn);
      } catch (error) {
        try {
          await conn.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}; RELEASE SAVEPOINT ${SAVEPOINT}`);
        } catch (rollbackError) {
          throw new AggregateError([error, rollbackError], 'A Postgres statement failed and its savepoint could not be rolled back.');
        }
        if (!isLiveKeyViolation(error)) throw error;
        return onTaken(conn, error);
      }
      await conn.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
      return result;
    });
  }

  async createFile(f: UploadFile): Promise<void> {
    const key = heldStorageKey(f);
    if (key === undefined) return this.#insertFile(this.db, f);
    return this.#keyed(
      (db) => this.#insertFile(db, f),
      async (_db, error) => {
        throw new StorageKeyTakenError(key, { cause: error });
      },
    );
  }

  async #insertFile(db: Queryable, f: UploadFile): Promise<void> {
    await db.query(
      `INSERT INTO ${this.s}.upload_file (id, batch_id, uploaded_by, storage_key, original_filename, content_type, size_bytes, sha256,
         metadata, status, error_code, error_message, direct_upload, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
      [f.id, f.batchId ?? null, f.uploadedBy ?? null, f.storageKey, f.originalFilename, f.contentType, f.sizeBytes, f.sha256,
        JSON.stringify(f.metadata), f.status, f.errorCode ?? null, f.errorMessage ?? null, directUploadJson(f.directUpload), f.createdAt, f.updatedAt],
    );
  }

  async getFile(id: string): Promise<UploadFile | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.upload_file WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : toFile(rows[0]);
  }

  async updateFile(id: string, patch: UploadFilePatch, options: { expectedStatus?: UploadFile['status']; now?: Date } = {}) {
    if (!isUuid(id)) return undefined;
    const sets: string[] = [];
    const values: unknown[] = [id];
    for (const [key, column] of Object.entries(FILE_COLUMNS) as Array<[keyof UploadFilePatch, string]>) {
      if (!(key in patch)) continue;
      values.push(filePatchValue(patch, key));
      sets.push(`${column} = $${values.length}`);
    }
    values.push(options.now ?? new Date());
    sets.push(`updated_at = $${values.length}`);
    let where = 'id = $1';
    if (options.expectedStatus !== undefined) {
      values.push(options.expectedStatus);
      where += ` AND status = $${values.length}`;
    }
    // The status condition in the same UPDATE makes it a compare-and-set (row lock, re-checked).
    const update = async (db: Queryable) => {
      const { rows } = await db.query(`UPDATE ${this.s}.upload_file SET ${sets.join(', ')} WHERE ${where} RETURNING *`, values);
      return rows[0] === undefined ? undefined : toFile(rows[0]);
    };
    if (!patchMayTakeKey(patch)) return update(this.db);
    return this.#keyed(update, async (db, error) => {
      // A status back to live keeps the file's key: read it back for the error (the row is unchanged).
      const key = patch.storageKey ?? String((await db.query(`SELECT storage_key FROM ${this.s}.upload_file WHERE id = $1`, [id])).rows[0]?.['storage_key'] ?? '');
      throw new StorageKeyTakenError(key, { cause: error });
    });
  }

  async claimStorageKey(id: string, key: string, now?: Date): Promise<boolean> {
    if (!isUuid(id)) return false;
    // One UPDATE: the UNIQUE index decides between concurrent claims (a second one waits for the
    // first's transaction, then fails with 23505), so no SELECT-then-UPDATE race.
    return this.#keyed(
      async (db) => {
        const { rowCount } = await db.query(`UPDATE ${this.s}.upload_file SET storage_key = $2, updated_at = $3 WHERE id = $1 AND ${LIVE_STATUS_PREDICATE}`, [
          id,
          key,
          now ?? new Date(),
        ]);
        return (rowCount ?? 0) > 0;
      },
      async () => false,
    );
  }

  async findLiveStorageKeys(keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const { rows } = await this.db.query<{ storage_key: string }>(
      `SELECT storage_key FROM ${this.s}.upload_file WHERE storage_key = ANY($1::text[]) AND ${LIVE_KEY_PREDICATE}`,
      [keys],
    );
    return new Set(rows.map((row) => row.storage_key));
  }

  async deleteFile(id: string): Promise<void> {
    if (!isUuid(id)) return;
    await this.db.query(`DELETE FROM ${this.s}.upload_file WHERE id = $1`, [id]);
  }

  async deleteFiles(ids: readonly string[]): Promise<number> {
    // Ids that are not uuids cannot exist (and would fail the cast).
    const uuids = ids.filter(isUuid);
    if (uuids.length === 0) return 0;
    // One statement for any number of ids: an array parameter, searched in the primary key.
    const { rowCount } = await this.db.query(`DELETE FROM ${this.s}.upload_file WHERE id = ANY($1::uuid[])`, [uuids]);
    return rowCount ?? 0;
  }

  async failFiles(
    ids: readonly string[],
    error: { code: UploadErrorCode; message: string },
    options: { expectedStatuses?: readonly UploadFileStatus[]; now?: Date } = {},
  ): Promise<string[]> {
    const uuids = ids.filter(isUuid);
    if (uuids.length === 0 || options.expectedStatuses?.length === 0) return [];
    const values: unknown[] = [uuids, error.code, error.message, options.now ?? new Date()];
    let where = 'id = ANY($1::uuid[])';
    if (options.expectedStatuses !== undefined) {
      values.push(options.expectedStatuses);
      where += ` AND status = ANY($${values.length}::text[])`;
    }
    // A compare-and-set per row, as in updateFile. A failed file holds no key, so this never
    // meets the live storage-key index (no savepoint needed).
    const { rows } = await this.db.query<{ id: string }>(
      `UPDATE ${this.s}.upload_file SET status = 'failed', error_code = $2, error_message = $3, updated_at = $4 WHERE ${where} RETURNING id`,
      values,
    );
    return rows.map((row) => row.id);
  }

  async listBatchFiles(batchId: string): Promise<UploadFile[]> {
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.upload_file WHERE batch_id = $1 ORDER BY created_at, id`, [batchId]);
    return rows.map(toFile);
  }

  #where(query: Omit<FileQuery, 'limit'>, values: unknown[]): string {
    values.push(query.statuses, query.createdBefore);
    let where = `status = ANY($${values.length - 1}) AND created_at < $${values.length}`;
    if (query.createdFrom !== undefined) {
      values.push(query.createdFrom);
      where += ` AND created_at >= $${values.length}`;
    }
    return where;
  }

  async findFiles(query: FileQuery): Promise<UploadFile[]> {
    const values: unknown[] = [];
    const where = this.#where(query, values);
    values.push(query.limit);
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.upload_file WHERE ${where} ORDER BY created_at, id LIMIT $${values.length}`, values);
    return rows.map(toFile);
  }

  async countFiles(query: Omit<FileQuery, 'limit'>): Promise<number> {
    const values: unknown[] = [];
    const where = this.#where(query, values);
    const { rows } = await this.db.query(`SELECT count(*)::int AS n FROM ${this.s}.upload_file WHERE ${where}`, values);
    return Number(rows[0]?.['n'] ?? 0);
  }

  async listFiles(page: FilePage): Promise<UploadFile[]> {
    const values: unknown[] = [page.limit];
    const where: string[] = [];
    if (page.statuses !== undefined) {
      values.push(page.statuses);
      where.push(`status = ANY($${values.length})`);
    }
    if (page.after !== undefined) {
      if (!isUuid(page.after.id)) return [];
      values.push(page.after.createdAt, page.after.id);
      where.push(`(created_at, id) < ($${values.length - 1}, $${values.length})`);
    }
    const { rows } = await this.db.query(
      `SELECT * FROM ${this.s}.upload_file ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY created_at DESC, id DESC LIMIT $1`,
      values,
    );
    return rows.map(toFile);
  }

  async findFilesByStorageKey(key: string): Promise<UploadFile[]> {
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.upload_file WHERE storage_key = $1 ORDER BY created_at, id`, [key]);
    return rows.map(toFile);
  }

  async createBatch(b: UploadBatch): Promise<UploadBatch> {
    const inserted = await this.db.query(
      `INSERT INTO ${this.s}.upload_batch (id, created_by, status, idempotency_key, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
      [b.id, b.createdBy ?? null, b.status, b.idempotencyKey, b.createdAt, b.updatedAt],
    );
    if (inserted.rows[0] !== undefined) return toBatch(inserted.rows[0]);
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.upload_batch WHERE idempotency_key = $1`, [b.idempotencyKey]);
    return toBatch(rows[0] as Row);
  }

  async getBatch(id: string): Promise<UploadBatch | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.upload_batch WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : toBatch(rows[0]);
  }

  async updateBatch(id: string, patch: Pick<UploadBatch, 'status'>, now?: Date): Promise<UploadBatch | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.db.query(`UPDATE ${this.s}.upload_batch SET status = $2, updated_at = $3 WHERE id = $1 RETURNING *`, [
      id,
      patch.status,
      now ?? new Date(),
    ]);
    return rows[0] === undefined ? undefined : toBatch(rows[0]);
  }

  /** The event and its deliveries in one statement (see `emitEvents`), so atomic outside a transaction too. */
  async emit(input: NewOutboxEvent): Promise<EmitResult> {
    const [row] = await emitEvents(this.db, this.s, this.schemaName, [input]);
    if (row !== undefined) return { event: toEvent(row), duplicate: false };
    const key = input.idempotencyKey ?? defaultIdempotencyKey(input);
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.outbox_event WHERE event_type = $1 AND idempotency_key = $2`, [input.eventType, key]);
    return { event: toEvent(rows[0] as Row), duplicate: true };
  }
}
