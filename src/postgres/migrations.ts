/**
 * The schema of the Postgres store, as numbered migrations. `migrate()` applies the missing
 * ones in one transaction under an advisory lock, so two processes starting at once are safe.
 */
import { StorageConfigError, StorageError } from '../errors.js';
import {
  failOutrankedUploadingSql,
  INTERRUPTED_MESSAGE,
  LIVE_KEY_PREDICATE,
  LIVE_STORAGE_KEY_INDEX,
  sharedLiveKeysSql,
  sharedStoredKeysMessage,
} from '../upload/sql-rows.js';
import { subscribesSql } from './delivery-sql.js';
import { installRelayFunctions } from './relay-functions.js';

export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** A connection taken out of a pool (a `pg.PoolClient`). */
export interface PooledClient extends Queryable {
  release(error?: Error | boolean): void;
  on(event: 'notification', listener: (message: { channel: string; payload?: string | undefined }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
}

/** A `pg.Pool`, or anything with `query` and `connect`. */
export interface PoolLike extends Queryable {
  connect(): Promise<PooledClient>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/u;

/** The schema name, checked and quoted; a bad name is a StorageConfigError. */
export function quoteSchema(schema: string): string {
  if (!IDENTIFIER.test(schema)) {
    throw new StorageConfigError(`Postgres schema name "${schema}" must be lower-case letters, digits and "_", starting with a letter or "_".`, {
      option: 'schema',
    });
  }
  return `"${schema}"`;
}

/** One migration: statements on the migrating transaction's connection; a throw rolls them all back. */
type Migration = (db: Queryable, s: string, schema: string) => Promise<void>;

const sql =
  (text: (s: string) => string): Migration =>
  async (db, s) => {
    await db.query(text(s));
  };

const MIGRATIONS: Migration[] = [
  sql((s) => `
    CREATE TABLE IF NOT EXISTS ${s}.upload_batch (
      id uuid PRIMARY KEY,
      created_by text,
      status text NOT NULL CHECK (status IN ('init', 'in_progress', 'complete', 'partial', 'failed')),
      idempotency_key text NOT NULL UNIQUE,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    );
    CREATE INDEX IF NOT EXISTS upload_batch_status_idx ON ${s}.upload_batch (status);
    CREATE INDEX IF NOT EXISTS upload_batch_created_at_idx ON ${s}.upload_batch (created_at);

    CREATE TABLE IF NOT EXISTS ${s}.upload_file (
      id uuid PRIMARY KEY,
      batch_id uuid,
      uploaded_by text,
      storage_key text NOT NULL,
      original_filename text NOT NULL,
      content_type text NOT NULL,
      size_bytes bigint NOT NULL DEFAULT 0,
      sha256 text NOT NULL DEFAULT '',
      metadata jsonb NOT NULL DEFAULT '{}',
      status text NOT NULL CHECK (status IN ('uploading', 'stored', 'processed', 'failed', 'deleted')),
      error_code text,
      error_message text,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    );
    CREATE INDEX IF NOT EXISTS upload_file_status_idx ON ${s}.upload_file (status);
    CREATE INDEX IF NOT EXISTS upload_file_created_at_idx ON ${s}.upload_file (created_at);
    CREATE INDEX IF NOT EXISTS upload_file_batch_id_idx ON ${s}.upload_file (batch_id);
    CREATE INDEX IF NOT EXISTS upload_file_storage_key_idx ON ${s}.upload_file (storage_key);

    CREATE TABLE IF NOT EXISTS ${s}.outbox_event (
      id uuid PRIMARY KEY,
      aggregate_type text NOT NULL,
      aggregate_id text NOT NULL,
      event_type text NOT NULL,
      payload jsonb NOT NULL,
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
      idempotency_key text NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      max_attempts integer NOT NULL DEFAULT 5,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      delivered_at timestamptz,
      error_message text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (event_type, idempotency_key)
    );
    CREATE INDEX IF NOT EXISTS outbox_event_pending_idx ON ${s}.outbox_event (next_attempt_at) WHERE status = 'pending';

    CREATE TABLE IF NOT EXISTS ${s}.webhook_endpoint (
      id uuid PRIMARY KEY,
      url text NOT NULL,
      secret text NOT NULL,
      event_types text[] NOT NULL DEFAULT '{}',
      is_active boolean NOT NULL DEFAULT true,
      created_at timestamptz NOT NULL DEFAULT now()
    );
  `),
  // The relay compares next_attempt_at with its own clock, in milliseconds (a JS Date). A
  // default in microseconds could put a new event a fraction of a millisecond in the future of
  // a relay that looks right after the commit, so it would wait for the next poll.
  sql((s) => `
    ALTER TABLE ${s}.outbox_event ALTER COLUMN next_attempt_at SET DEFAULT date_trunc('milliseconds', now());
  `),
  // One live file per storage key, so two uploads can never share a key (and overwrite each
  // other's object on servers without conditional writes). Older versions created uploading
  // records with the key they meant to use; those that lost the key are failed first. Stored
  // files sharing a key are data the old race already lost: refused, for a person to decide.
  async (db, s, schema) => {
    await db.query(failOutrankedUploadingSql(`${s}.upload_file`, `date_trunc('milliseconds', now())`, '$1'), [INTERRUPTED_MESSAGE]);
    const { rows } = await db.query<{ storage_key: string; total: number | string }>(sharedLiveKeysSql(`${s}.upload_file`));
    if (rows.length > 0) {
      const keys = rows.map((row) => row.storage_key);
      throw new StorageError(sharedStoredKeysMessage(`Postgres schema "${schema}"`, `${s}.upload_file`, keys, Number(rows[0]?.total)));
    }
    await db.query(`CREATE UNIQUE INDEX IF NOT EXISTS ${LIVE_STORAGE_KEY_INDEX} ON ${s}.upload_file (storage_key) WHERE ${LIVE_KEY_PREDICATE}`);
  },
  // Deliveries per endpoint: each event to each endpoint has its own attempts, schedule and
  // log, so one failing endpoint no longer holds back (or re-sends to) the others. The relay
  // claims deliveries through their partial index only; events no longer carry a schedule
  // (their old attempts/max_attempts/next_attempt_at columns stay, unused, for older readers).
  // `seq` is the creation order: deliveries due at the same instant (created_at is in
  // milliseconds) are claimed in the order they were created. The relay's claim and round
  // are functions (see relay-functions.ts).
  // Events in flight are carried over: a pending event becomes one pending delivery per active
  // endpoint it goes to, with its attempts, schedule and last error; a failed one a failed
  // delivery per endpoint it went to (a dead letter that can be redelivered); a pending event
  // that goes nowhere is delivered.
  async (db, s) => {
    await db.query(`
    ALTER TABLE ${s}.webhook_endpoint
      ADD COLUMN IF NOT EXISTS previous_secret text,
      ADD COLUMN IF NOT EXISTS previous_secret_expires_at timestamptz,
      ADD COLUMN IF NOT EXISTS disabled_at timestamptz,
      ADD COLUMN IF NOT EXISTS disabled_reason text,
      ADD COLUMN IF NOT EXISTS failing_since timestamptz,
      ADD COLUMN IF NOT EXISTS last_success_at timestamptz;

    CREATE TABLE IF NOT EXISTS ${s}.webhook_delivery (
      id uuid PRIMARY KEY,
      event_id uuid NOT NULL REFERENCES ${s}.outbox_event (id) ON DELETE CASCADE,
      endpoint_id uuid NOT NULL REFERENCES ${s}.webhook_endpoint (id) ON DELETE CASCADE,
      event_type text NOT NULL,
      status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL,
      last_status integer,
      last_error text,
      last_duration_ms integer,
      attempt_log jsonb NOT NULL DEFAULT '[]',
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      delivered_at timestamptz,
      seq bigint GENERATED ALWAYS AS IDENTITY,
      UNIQUE (event_id, endpoint_id)
    );
    CREATE INDEX IF NOT EXISTS webhook_delivery_due_idx ON ${s}.webhook_delivery (next_attempt_at, seq) WHERE status = 'pending';
    CREATE INDEX IF NOT EXISTS webhook_delivery_endpoint_idx ON ${s}.webhook_delivery (endpoint_id, created_at);
    CREATE INDEX IF NOT EXISTS webhook_delivery_created_at_idx ON ${s}.webhook_delivery (created_at);

    INSERT INTO ${s}.webhook_delivery
      (id, event_id, endpoint_id, event_type, status, attempts, next_attempt_at, last_error, created_at, updated_at)
    SELECT gen_random_uuid(), e.id, w.id, e.event_type, e.status, e.attempts, e.next_attempt_at, e.error_message,
      e.created_at, date_trunc('milliseconds', now())
    FROM ${s}.outbox_event AS e
    JOIN ${s}.webhook_endpoint AS w ON ${subscribesSql('w', 'e.event_type')} AND (w.is_active OR e.status = 'failed')
    WHERE e.status IN ('pending', 'failed')
    ORDER BY e.created_at, e.id, w.created_at, w.id;

    UPDATE ${s}.outbox_event AS e
    SET status = 'delivered', delivered_at = date_trunc('milliseconds', now()), error_message = NULL, updated_at = date_trunc('milliseconds', now())
    WHERE e.status = 'pending' AND NOT EXISTS (SELECT 1 FROM ${s}.webhook_delivery AS d WHERE d.event_id = e.id);

    DROP INDEX IF EXISTS ${s}.outbox_event_pending_idx;
    -- Statistics for the rows just carried over, for the admin queries (the relay's functions
    -- do not depend on them).
    ANALYZE ${s}.webhook_delivery;
  `);
    await installRelayFunctions(db, s);
  },
  // How a direct upload was set up (see DirectUploadState); NULL for every other file.
  sql((s) => `
    ALTER TABLE ${s}.upload_file ADD COLUMN IF NOT EXISTS direct_upload jsonb;
  `),
];

/**
 * Create the schema and apply every missing migration. Idempotent, and safe when several
 * processes run it at once (a transaction-scoped advisory lock serializes them).
 */
export async function migrate(pool: PoolLike, options: { schema?: string } = {}): Promise<{ applied: number }> {
  const schema = options.schema ?? 'public';
  const s = quoteSchema(schema);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // One lock id per schema: hashtext gives a stable int4.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`doorito-storage:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.doorito_migration (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${s}.doorito_migration`);
    const done = new Set(rows.map((r) => r.version));
    let applied = 0;
    for (const [index, migration] of MIGRATIONS.entries()) {
      const version = index + 1;
      if (done.has(version)) continue;
      await migration(client, s, schema);
      await client.query(`INSERT INTO ${s}.doorito_migration (version) VALUES ($1)`, [version]);
      applied += 1;
    }
    await client.query('COMMIT');
    return { applied };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
