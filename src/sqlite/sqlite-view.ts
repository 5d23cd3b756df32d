/**
 * The repository and emitter statements over one SQLite connection. Each method runs its
 * statements synchronously (better-sqlite3 is synchronous); the store decides whether they run
 * inside its transaction or on their own.
 */
import { StorageKeyTakenError } from '../upload/errors.js';
import type { UploadBatch, UploadErrorCode, UploadFile, UploadFileStatus } from '../upload/model.js';
import type { EmitResult, FilePage, FileQuery, NewOutboxEvent, OutboxEmitter, UploadFilePatch, UploadRepository } from '../upload/ports.js';
import { directUploadJson, FILE_COLUMNS, filePatchValue, LIVE_KEY_PREDICATE, LIVE_STATUS_PREDICATE, patchMayTakeKey } from '../upload/sql-rows.js';
import { ms, toBatch, toFile, type Row, type Statements } from './rows.js';
import { isLiveKeyViolation } from './sql-errors.js';
import { insertEvent } from './sqlite-deliveries.js';

export interface ViewHooks {
  /** Called before every statement; throws when the view may no longer be used. */
  check(): void;
  /** Called after a new (not duplicate) event was inserted. */
  emitted(): void;
}

export class SqliteView implements UploadRepository, OutboxEmitter {
  readonly #sql: Statements;
  readonly #hooks: ViewHooks;

  constructor(sql: Statements, hooks: ViewHooks) {
    this.#sql = sql;
    this.#hooks = hooks;
  }

  /**
   * Run `statement`; a violation of the live storage-key index becomes `onTaken()` instead.
   * SQLite undoes only the failed statement (ON CONFLICT ABORT), so a transaction stays usable.
   */
  #keyed<T>(statement: () => T, onTaken: (error: unknown) => T): T {
    try {
      return statement();
    } catch (error) {
      if (!isLiveKeyViolation(error)) throw error;
      return onTaken(error);
    }
  }

  async createFile(f: UploadFile): Promise<void> {
    this.#hooks.check();
    this.#keyed(() => this.#insertFile(f), (error) => {
      throw new StorageKeyTakenError(f.storageKey, { cause: error });
    });
  }

  #insertFile(f: UploadFile): void {
    this.#sql.run(
      `INSERT INTO upload_file (id, batch_id, uploaded_by, storage_key, original_filename, content_type, size_bytes, sha256,
         metadata, status, error_code, error_message, direct_upload, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      f.id, f.batchId ?? null, f.uploadedBy ?? null, f.storageKey, f.originalFilename, f.contentType, f.sizeBytes, f.sha256,
      JSON.stringify(f.metadata), f.status, f.errorCode ?? null, f.errorMessage ?? null, directUploadJson(f.directUpload), ms(f.createdAt), ms(f.updatedAt),
    );
  }

  async getFile(id: string): Promise<UploadFile | undefined> {
    this.#hooks.check();
    const row = this.#sql.one('SELECT * FROM upload_file WHERE id = ?', id);
    return row === undefined ? undefined : toFile(row);
  }

  async updateFile(id: string, patch: UploadFilePatch, options: { expectedStatus?: UploadFile['status']; now?: Date } = {}) {
    this.#hooks.check();
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [key, column] of Object.entries(FILE_COLUMNS) as Array<[keyof UploadFilePatch, string]>) {
      if (!(key in patch)) continue;
      values.push(filePatchValue(patch, key));
      sets.push(`${column} = ?`);
    }
    sets.push('updated_at = ?');
    values.push(ms(options.now ?? new Date()), id);
    let where = 'id = ?';
    if (options.expectedStatus !== undefined) {
      where += ' AND status = ?';
      values.push(options.expectedStatus);
    }
    // The status condition in the same UPDATE makes it a compare-and-set.
    const update = () => this.#sql.one(`UPDATE upload_file SET ${sets.join(', ')} WHERE ${where} RETURNING *`, ...values);
    const row = !patchMayTakeKey(patch)
      ? update()
      : this.#keyed(update, (error) => {
          // A status back to live keeps the file's key: read it back for the error (the row is unchanged).
          const key = patch.storageKey ?? String(this.#sql.one('SELECT storage_key FROM upload_file WHERE id = ?', id)?.['storage_key'] ?? '');
          throw new StorageKeyTakenError(key, { cause: error });
        });
    return row === undefined ? undefined : toFile(row);
  }

  async claimStorageKey(id: string, key: string, now?: Date): Promise<boolean> {
    this.#hooks.check();
    // One UPDATE: the UNIQUE index decides, also between connections and processes on the file.
    const claim = () =>
      this.#sql.run(`UPDATE upload_file SET storage_key = ?, updated_at = ? WHERE id = ? AND ${LIVE_STATUS_PREDICATE}`, key, ms(now ?? new Date()), id)
        .changes > 0;
    return this.#keyed(claim, () => false);
  }

  async findLiveStorageKeys(keys: readonly string[]): Promise<Set<string>> {
    this.#hooks.check();
    if (keys.length === 0) return new Set();
    // A JSON array parameter: one prepared statement for any number of keys, and no limit on
    // bound parameters. CROSS JOIN keeps the keys as the outer loop, one search of the live-key
    // index each; left to itself, the planner scans upload_file_status_idx (every live file).
    const rows = this.#sql.all(
      `SELECT storage_key FROM json_each(?) AS asked CROSS JOIN upload_file WHERE storage_key = asked.value AND ${LIVE_KEY_PREDICATE}`,
      JSON.stringify(keys),
    );
    return new Set(rows.map((row) => String(row['storage_key'])));
  }

  async deleteFile(id: string): Promise<void> {
    this.#hooks.check();
    this.#sql.run('DELETE FROM upload_file WHERE id = ?', id);
  }

  async deleteFiles(ids: readonly string[]): Promise<number> {
    this.#hooks.check();
    if (ids.length === 0) return 0;
    // A JSON array parameter: one prepared statement for any number of ids, past the limit on
    // bound parameters; each id is one search of the primary key.
    return this.#sql.run('DELETE FROM upload_file WHERE id IN (SELECT value FROM json_each(?))', JSON.stringify(ids)).changes;
  }

  async failFiles(
    ids: readonly string[],
    error: { code: UploadErrorCode; message: string },
    options: { expectedStatuses?: readonly UploadFileStatus[]; now?: Date } = {},
  ): Promise<string[]> {
    this.#hooks.check();
    if (ids.length === 0 || options.expectedStatuses?.length === 0) return [];
    const values: unknown[] = [error.code, error.message, ms(options.now ?? new Date()), JSON.stringify(ids)];
    let where = 'id IN (SELECT value FROM json_each(?))';
    if (options.expectedStatuses !== undefined) {
      where += ' AND status IN (SELECT value FROM json_each(?))';
      values.push(JSON.stringify(options.expectedStatuses));
    }
    // A compare-and-set per row, as in updateFile. A failed file holds no key, so this never
    // meets the live storage-key index.
    const rows = this.#sql.all(
      `UPDATE upload_file SET status = 'failed', error_code = ?, error_message = ?, updated_at = ? WHERE ${where} RETURNING id`,
      ...values,
    );
    return rows.map((row) => String(row['id']));
  }

  async listBatchFiles(batchId: string): Promise<UploadFile[]> {
    this.#hooks.check();
    return this.#sql.all('SELECT * FROM upload_file WHERE batch_id = ? ORDER BY created_at, id', batchId).map(toFile);
  }

  #where(query: Omit<FileQuery, 'limit'>, values: unknown[]): string {
    // A JSON array parameter keeps one prepared statement for any number of statuses.
    values.push(JSON.stringify(query.statuses), ms(query.createdBefore));
    let where = 'status IN (SELECT value FROM json_each(?)) AND created_at < ?';
    if (query.createdFrom !== undefined) {
      values.push(ms(query.createdFrom));
      where += ' AND created_at >= ?';
    }
    return where;
  }

  async findFiles(query: FileQuery): Promise<UploadFile[]> {
    this.#hooks.check();
    const values: unknown[] = [];
    const where = this.#where(query, values);
    return this.#sql.all(`SELECT * FROM upload_file WHERE ${where} ORDER BY created_at, id LIMIT ?`, ...values, query.limit).map(toFile);
  }

  async countFiles(query: Omit<FileQuery, 'limit'>): Promise<number> {
    this.#hooks.check();
    const values: unknown[] = [];
    const where = this.#where(query, values);
    return Number(this.#sql.one(`SELECT count(*) AS n FROM upload_file WHERE ${where}`, ...values)?.['n'] ?? 0);
  }

  async listFiles(page: FilePage): Promise<UploadFile[]> {
    this.#hooks.check();
    const values: unknown[] = [];
    const where: string[] = [];
    if (page.statuses !== undefined) {
      where.push(`status IN (${page.statuses.map(() => '?').join(', ') || 'NULL'})`);
      values.push(...page.statuses);
    }
    if (page.after !== undefined) {
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      values.push(ms(page.after.createdAt), ms(page.after.createdAt), page.after.id);
    }
    const sql = `SELECT * FROM upload_file ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return this.#sql.all(sql, ...values, page.limit).map(toFile);
  }

  async findFilesByStorageKey(key: string): Promise<UploadFile[]> {
    this.#hooks.check();
    return this.#sql.all('SELECT * FROM upload_file WHERE storage_key = ? ORDER BY created_at, id', key).map(toFile);
  }

  async createBatch(b: UploadBatch): Promise<UploadBatch> {
    this.#hooks.check();
    const inserted = this.#sql.one(
      `INSERT INTO upload_batch (id, created_by, status, idempotency_key, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
      b.id, b.createdBy ?? null, b.status, b.idempotencyKey, ms(b.createdAt), ms(b.updatedAt),
    );
    if (inserted !== undefined) return toBatch(inserted);
    return toBatch(this.#sql.one('SELECT * FROM upload_batch WHERE idempotency_key = ?', b.idempotencyKey) as Row);
  }

  async getBatch(id: string): Promise<UploadBatch | undefined> {
    this.#hooks.check();
    const row = this.#sql.one('SELECT * FROM upload_batch WHERE id = ?', id);
    return row === undefined ? undefined : toBatch(row);
  }

  async updateBatch(id: string, patch: Pick<UploadBatch, 'status'>, now?: Date): Promise<UploadBatch | undefined> {
    this.#hooks.check();
    const row = this.#sql.one('UPDATE upload_batch SET status = ?, updated_at = ? WHERE id = ? RETURNING *', patch.status, ms(now ?? new Date()), id);
    return row === undefined ? undefined : toBatch(row);
  }

  async emit(input: NewOutboxEvent): Promise<EmitResult> {
    this.#hooks.check();
    // The event and its deliveries together: in the store's transaction, or in one of their own.
    const result = this.#sql.write(() => insertEvent(this.#sql, input));
    if (!result.duplicate) this.#hooks.emitted();
    return result;
  }
}
