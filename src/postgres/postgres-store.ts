import { randomUUID } from 'node:crypto';
import type { OutboxEvent, UploadBatch, UploadFile } from '../upload/model.js';
import {
  defaultIdempotencyKey,
  type EmitResult,
  type FilePage,
  type FileQuery,
  type NewOutboxEvent,
  type OutboxEmitter,
  type UnitOfWork,
  type UploadFilePatch,
  type UploadRepository,
  type UploadTransaction,
} from '../upload/ports.js';
import { StorageConfigError } from '../errors.js';
import { OUTBOX_CHANNEL, listenOnClient, listenOnPool, type Listen } from './listen.js';
import { migrate, quoteSchema, type PoolLike, type Queryable } from './migrations.js';
import { PostgresOutbox } from './postgres-outbox.js';
import { SerializedClient, type ClientLike } from './single-client.js';
import { FILE_COLUMNS } from '../upload/sql-rows.js';
import { isUuid, toBatch, toEvent, toFile, type Row } from './rows.js';


/** Repository and emitter statements over one connection (or the pool). */
class PostgresView implements UploadRepository, OutboxEmitter {
  constructor(
    private readonly db: Queryable,
    private readonly s: string,
    /** The schema's plain name: NOTIFY payloads start with it, so each store wakes only for its own events. */
    private readonly schemaName: string,
  ) {}

  async createFile(f: UploadFile): Promise<void> {
    await this.db.query(
      `INSERT INTO ${this.s}.upload_file (id, batch_id, uploaded_by, storage_key, original_filename, content_type, size_bytes, sha256,
         metadata, status, error_code, error_message, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
      [f.id, f.batchId ?? null, f.uploadedBy ?? null, f.storageKey, f.originalFilename, f.contentType, f.sizeBytes, f.sha256,
        JSON.stringify(f.metadata), f.status, f.errorCode ?? null, f.errorMessage ?? null, f.createdAt, f.updatedAt],
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
      const value = patch[key];
      values.push(key === 'metadata' ? JSON.stringify(value) : (value ?? null));
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
    const { rows } = await this.db.query(`UPDATE ${this.s}.upload_file SET ${sets.join(', ')} WHERE ${where} RETURNING *`, values);
    return rows[0] === undefined ? undefined : toFile(rows[0]);
  }

  async deleteFile(id: string): Promise<void> {
    if (!isUuid(id)) return;
    await this.db.query(`DELETE FROM ${this.s}.upload_file WHERE id = $1`, [id]);
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

  async emit(input: NewOutboxEvent): Promise<EmitResult> {
    const key = input.idempotencyKey ?? defaultIdempotencyKey(input);
    const inserted = await this.db.query(
      `INSERT INTO ${this.s}.outbox_event (id, aggregate_type, aggregate_id, event_type, payload, idempotency_key)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_type, idempotency_key) DO NOTHING RETURNING *`,
      [randomUUID(), input.aggregateType, input.aggregateId, input.eventType, JSON.stringify(input.payload), key],
    );
    const row = inserted.rows[0];
    if (row !== undefined) {
      // Delivered to listeners when (and only if) the transaction commits.
      await this.db.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, `${this.schemaName}:${String(row['id'])}`]);
      return { event: toEvent(row), duplicate: false };
    }
    const { rows } = await this.db.query(`SELECT * FROM ${this.s}.outbox_event WHERE event_type = $1 AND idempotency_key = $2`, [input.eventType, key]);
    return { event: toEvent(rows[0] as Row), duplicate: true };
  }
}

/** Options of {@link PostgresUploadStore}: a pool, or one connected client. */
export type PostgresUploadStoreOptions = (
  | {
      /** A `pg.Pool` (or anything with `query` and `connect`). The host owns and ends it. */
      pool: PoolLike;
      client?: never;
    }
  | {
      /**
       * One connected `pg.Client` that the host owns and ends. The store then runs one
       * statement or transaction at a time on it, in order; a relay's LISTEN shares it too.
       */
      client: ClientLike;
      pool?: never;
    }
) & {
  /**
   * Schema of the tables (create them with `migrate(pool, { schema })` or `store.migrate()`).
   * @default 'public'
   */
  schema?: string;
};

/**
 * The upload ports on Postgres: a repository and an outbox whose event is written in the same
 * real transaction as the state change it reports, and the relay's view of that outbox.
 *
 * @example
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
 * await migrate(pool)
 * const store = new PostgresUploadStore({ pool })
 * const uploads = new UploadService({ storage, repository: store.repository, unitOfWork: store })
 * const relay = new OutboxRelay({ store })
 *
 * @example
 * // One connection instead of a pool
 * const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
 * await client.connect()
 * const store = new PostgresUploadStore({ client })
 * await store.migrate()
 */
export class PostgresUploadStore extends PostgresOutbox implements UnitOfWork {
  readonly #pool: PoolLike;
  readonly #schema: string;
  readonly #schemaName: string;
  /** The repository outside any transaction (each statement commits on its own). */
  readonly repository: UploadRepository;
  /** The emitter outside any transaction. */
  readonly outbox: OutboxEmitter;

  constructor(options: PostgresUploadStoreOptions) {
    const schemaName = options.schema ?? 'public';
    const schema = quoteSchema(schemaName);
    let pool: PoolLike;
    let listen: Listen;
    if (options.pool !== undefined) {
      pool = options.pool;
      listen = listenOnPool(pool);
    } else if (options.client !== undefined && typeof options.client.query === 'function') {
      const serialized = new SerializedClient(options.client);
      pool = serialized;
      listen = listenOnClient(serialized);
    } else {
      throw new StorageConfigError('PostgresUploadStore needs a `pool` (a pg.Pool) or a `client` (a connected pg.Client).', { option: 'pool' });
    }
    super(pool, schema, schemaName, listen);
    this.#pool = pool;
    this.#schema = schema;
    this.#schemaName = schemaName;
    const view = new PostgresView(this.#pool, this.#schema, this.#schemaName);
    this.repository = view;
    this.outbox = view;
  }

  /** Create or update the tables in this store's schema ({@link migrate} on its pool or client). */
  migrate(): Promise<{ applied: number }> {
    return migrate(this.#pool, { schema: this.#schemaName });
  }

  async transaction<T>(fn: (tx: UploadTransaction) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const view = new PostgresView(client, this.#schema, this.#schemaName);
      const result = await fn({ repository: view, outbox: view });
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      // A connection that could not even roll back is not given back to the pool.
      client.release(broken);
    }
  }

  /** Every event in the outbox, oldest first. */
  async events(): Promise<OutboxEvent[]> {
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#schema}.outbox_event ORDER BY created_at, id`);
    return rows.map(toEvent);
  }
}
