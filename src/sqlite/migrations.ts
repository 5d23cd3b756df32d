/**
 * The schema of the SQLite store, as numbered migrations. `migrate()` applies the missing ones
 * in one `BEGIN IMMEDIATE` transaction, so two connections (or processes) starting at once are
 * safe: the second waits for the write lock, then finds nothing left to do.
 */
import type Database from 'better-sqlite3';
import { StorageError } from '../errors.js';
import {
  failOutrankedUploadingSql,
  INTERRUPTED_MESSAGE,
  LIVE_KEY_PREDICATE,
  LIVE_STORAGE_KEY_INDEX,
  sharedLiveKeysSql,
  sharedStoredKeysMessage,
} from '../upload/sql-rows.js';
import { subscribesSql, UUID_SQL } from './sqlite-deliveries.js';

/** Milliseconds since the epoch, now (for column defaults; the store always passes its own instants). */
const NOW_MS = `(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))`;

// Instants are INTEGER milliseconds since the epoch: a JS Date round-trips exactly, which the
// lease compare-and-set (`next_attempt_at = ?`) relies on. STRICT tables refuse a value of the
// wrong type instead of storing it as text. A migration is SQL, or a function of the connection
// (inside the migrating transaction: a throw rolls it all back).
const MIGRATIONS: Array<string | ((db: Database.Database) => void)> = [
  `
    CREATE TABLE IF NOT EXISTS upload_batch (
      id TEXT PRIMARY KEY,
      created_by TEXT,
      status TEXT NOT NULL CHECK (status IN ('init', 'in_progress', 'complete', 'partial', 'failed')),
      idempotency_key TEXT NOT NULL UNIQUE,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX IF NOT EXISTS upload_batch_status_idx ON upload_batch (status);
    CREATE INDEX IF NOT EXISTS upload_batch_created_at_idx ON upload_batch (created_at);

    CREATE TABLE IF NOT EXISTS upload_file (
      id TEXT PRIMARY KEY,
      batch_id TEXT,
      uploaded_by TEXT,
      storage_key TEXT NOT NULL,
      original_filename TEXT NOT NULL,
      content_type TEXT NOT NULL,
      size_bytes INTEGER NOT NULL DEFAULT 0,
      sha256 TEXT NOT NULL DEFAULT '',
      metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
      status TEXT NOT NULL CHECK (status IN ('uploading', 'stored', 'processed', 'failed', 'deleted')),
      error_code TEXT,
      error_message TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX IF NOT EXISTS upload_file_status_idx ON upload_file (status);
    CREATE INDEX IF NOT EXISTS upload_file_created_at_idx ON upload_file (created_at);
    CREATE INDEX IF NOT EXISTS upload_file_batch_id_idx ON upload_file (batch_id);
    CREATE INDEX IF NOT EXISTS upload_file_storage_key_idx ON upload_file (storage_key);

    CREATE TABLE IF NOT EXISTS outbox_event (
      id TEXT PRIMARY KEY,
      aggregate_type TEXT NOT NULL,
      aggregate_id TEXT NOT NULL,
      event_type TEXT NOT NULL,
      payload TEXT NOT NULL CHECK (json_valid(payload)),
      status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
      idempotency_key TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      max_attempts INTEGER NOT NULL DEFAULT 5,
      next_attempt_at INTEGER NOT NULL DEFAULT ${NOW_MS},
      delivered_at INTEGER,
      error_message TEXT,
      created_at INTEGER NOT NULL DEFAULT ${NOW_MS},
      updated_at INTEGER NOT NULL DEFAULT ${NOW_MS},
      UNIQUE (event_type, idempotency_key)
    ) STRICT;
    CREATE INDEX IF NOT EXISTS outbox_event_pending_idx ON outbox_event (next_attempt_at) WHERE status = 'pending';

    CREATE TABLE IF NOT EXISTS webhook_endpoint (
      id TEXT PRIMARY KEY,
      url TEXT NOT NULL,
      secret TEXT NOT NULL,
      event_types TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(event_types)),
      is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
      created_at INTEGER NOT NULL DEFAULT ${NOW_MS}
    ) STRICT;
  `,
  // One live file per storage key, so two uploads can never share a key (and overwrite each
  // other's object). Older versions created uploading records with the key they meant to use;
  // those that lost the key are failed first. Stored files sharing a key are data the old race
  // already lost: refused, for a person to decide.
  (db) => {
    db.prepare(failOutrankedUploadingSql('upload_file', NOW_MS, '?')).run(INTERRUPTED_MESSAGE);
    const rows = db.prepare<[], { storage_key: string; total: number }>(sharedLiveKeysSql('upload_file')).all();
    if (rows.length > 0) {
      const where = `SQLite database "${db.name}"`;
      throw new StorageError(sharedStoredKeysMessage(where, 'upload_file', rows.map((row) => row.storage_key), Number(rows[0]?.total)));
    }
    db.exec(`CREATE UNIQUE INDEX IF NOT EXISTS ${LIVE_STORAGE_KEY_INDEX} ON upload_file (storage_key) WHERE ${LIVE_KEY_PREDICATE}`);
  },
  // A delivery per (event, endpoint), each with its own attempts, schedule and log; events only
  // keep the status over their deliveries. The partial index is the claim's only access path.
  // Data: a pending event goes on to every active endpoint that subscribes to it, where it
  // stood (attempts, next_attempt_at, its error); a failed one becomes a dead letter for every
  // subscribing endpoint, active or not, to redeliver; a pending event nobody subscribes to is
  // delivered. The old claim columns (attempts, max_attempts, next_attempt_at) stay, unused.
  `
    ALTER TABLE webhook_endpoint ADD COLUMN previous_secret TEXT;
    ALTER TABLE webhook_endpoint ADD COLUMN previous_secret_expires_at INTEGER;
    ALTER TABLE webhook_endpoint ADD COLUMN disabled_at INTEGER;
    ALTER TABLE webhook_endpoint ADD COLUMN disabled_reason TEXT;
    ALTER TABLE webhook_endpoint ADD COLUMN failing_since INTEGER;
    ALTER TABLE webhook_endpoint ADD COLUMN last_success_at INTEGER;

    CREATE TABLE webhook_delivery (
      id TEXT PRIMARY KEY,
      event_id TEXT NOT NULL REFERENCES outbox_event (id) ON DELETE CASCADE,
      endpoint_id TEXT NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
      event_type TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL,
      last_status INTEGER,
      last_error TEXT,
      last_duration_ms INTEGER,
      attempt_log TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(attempt_log)),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      delivered_at INTEGER,
      UNIQUE (event_id, endpoint_id)
    ) STRICT;
    CREATE INDEX webhook_delivery_pending_idx ON webhook_delivery (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX webhook_delivery_endpoint_idx ON webhook_delivery (endpoint_id, created_at);
    CREATE INDEX webhook_delivery_created_at_idx ON webhook_delivery (created_at);

    INSERT INTO webhook_delivery (id, event_id, endpoint_id, event_type, status, attempts, next_attempt_at, last_error, attempt_log, created_at, updated_at)
    SELECT ${UUID_SQL}, o.id, w.id, o.event_type, o.status, o.attempts, o.next_attempt_at, o.error_message, '[]', o.created_at, o.updated_at
    FROM outbox_event AS o JOIN webhook_endpoint AS w
      ON ((o.status = 'pending' AND w.is_active = 1) OR o.status = 'failed') AND ${subscribesSql('w', 'o.event_type')}
    ORDER BY o.created_at, o.rowid, w.created_at, w.rowid;
    UPDATE outbox_event SET status = 'delivered', delivered_at = ${NOW_MS}, updated_at = ${NOW_MS}
    WHERE status = 'pending' AND NOT EXISTS (SELECT 1 FROM webhook_delivery WHERE event_id = outbox_event.id);
    DROP INDEX IF EXISTS outbox_event_pending_idx;
  `,
  // How a direct upload was set up (see DirectUploadState); NULL for every other file. A column
  // CHECK added by ALTER TABLE is also checked against the rows already there (all NULL here).
  `
    ALTER TABLE upload_file ADD COLUMN direct_upload TEXT CHECK (direct_upload IS NULL OR json_valid(direct_upload));
  `,
];

/**
 * Create the tables and apply every missing migration, recording each in `doorito_migration`.
 * Idempotent, and safe when several connections or processes run it at once: it runs inside
 * `BEGIN IMMEDIATE`, which takes the write lock up front (the others wait up to the
 * connection's `busy_timeout`). `new SqliteUploadStore()` calls it unless `migrate: false`.
 *
 * @returns how many migrations this call applied (0 when the schema was up to date).
 * @example
 * const db = new Database('uploads.db')
 * migrate(db) // { applied: 1 } the first time, { applied: 0 } after
 */
export function migrate(database: Database.Database): { applied: number } {
  const apply = database.transaction((): { applied: number } => {
    database.exec('CREATE TABLE IF NOT EXISTS doorito_migration (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
    const done = new Set(
      database
        .prepare<[], { version: number }>('SELECT version FROM doorito_migration')
        .all()
        .map((row) => Number(row.version)),
    );
    const record = database.prepare<[number, number]>('INSERT INTO doorito_migration (version, applied_at) VALUES (?, ?)');
    let applied = 0;
    for (const [index, migration] of MIGRATIONS.entries()) {
      const version = index + 1;
      if (done.has(version)) continue;
      if (typeof migration === 'string') database.exec(migration);
      else migration(database);
      record.run(version, Date.now());
      applied += 1;
    }
    return { applied };
  });
  return apply.immediate();
}
