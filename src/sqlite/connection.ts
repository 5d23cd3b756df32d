/**
 * Opening (or adopting) the connection of a SqliteUploadStore, and its pragmas.
 */
import Database from 'better-sqlite3';
import { StorageConfigError } from '../errors.js';
import { isAbiMismatch, nativeModuleMismatch } from '../dependencies.js';
import type { SecretsKey } from '../outbox/secret-box.js';
import type { EndpointGuardOptions } from '../upload/webhook-endpoint.js';

/** Options of {@link SqliteUploadStore} (`allowPrivateNetworks`: see EndpointGuardOptions). */
export interface SqliteUploadStoreOptions extends EndpointGuardOptions {
  /**
   * A `better-sqlite3` `Database` the host owns (the store never closes it), or the path of a
   * database file the store opens (created if missing) and `close()` closes. `':memory:'` works
   * for a single store, e.g. in tests.
   *
   * The store sets `journal_mode = WAL` on it (readers do not block the writer; the mode is
   * stored in the file). On a file it opens, also `foreign_keys = ON` and `busy_timeout`.
   * @example 'data/uploads.db'
   * @example new Database('data/uploads.db')
   */
  database: Database.Database | string;
  /**
   * How long a write waits for another connection's write lock before failing with
   * SQLITE_BUSY (`PRAGMA busy_timeout`). Set on a host's `Database` only when given: its own
   * `timeout` option (5000 ms by default) already sets it. The wait blocks the event loop.
   * @default 5000
   */
  busyTimeoutMs?: number;
  /**
   * Apply missing migrations when the store is created (see `migrate()`).
   * @default true
   */
  migrate?: boolean;
  /**
   * Keep webhook endpoint secrets encrypted at rest (AES-256-GCM, the endpoint id as additional
   * data): 32 bytes, as base64 (`openssl rand -base64 32`), 64 hex digits, or a Buffer. Secrets
   * stored before a key was set are still read as they are (rotate them to have them sealed); a
   * store without the key cannot read sealed ones (StorageConfigError). Losing the key loses
   * the secrets: rotate every endpoint's secret then.
   * @default undefined (secrets kept as given)
   * @example new SqliteUploadStore({ database: 'data/uploads.db', secretsKey: process.env.WEBHOOK_SECRETS_KEY })
   */
  secretsKey?: SecretsKey | undefined;
}

const isDatabase = (value: unknown): value is Database.Database =>
  typeof value === 'object' &&
  value !== null &&
  ['prepare', 'exec', 'pragma', 'transaction'].every((method) => typeof (value as Record<string, unknown>)[method] === 'function');

const isBusy = (error: unknown): boolean => error instanceof Error && (error as { code?: unknown }).code === 'SQLITE_BUSY';

/**
 * `PRAGMA journal_mode = WAL`, retried while another connection holds a lock. SQLite answers
 * SQLITE_BUSY at once here, without calling the busy handler, when two processes open a fresh
 * file together (switching to WAL needs an exclusive lock), so busy_timeout alone does not help.
 */
function useWal(db: Database.Database, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      // Synchronous like SQLite's own busy wait: the constructor is synchronous.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/** The connection of a store, and whether the store opened it (and so closes it). */
export function openConnection(options: SqliteUploadStoreOptions): { db: Database.Database; owned: boolean } {
  const { database } = options;
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new StorageConfigError(`SqliteUploadStore option "busyTimeoutMs" must be a whole number of milliseconds ≥ 0, got ${String(options.busyTimeoutMs)}.`, {
      option: 'busyTimeoutMs',
    });
  }
  if (isDatabase(database)) {
    if (!database.open) {
      throw new StorageConfigError('SqliteUploadStore was given a closed better-sqlite3 Database; pass an open one, or a file path.', { option: 'database' });
    }
    if (options.busyTimeoutMs !== undefined) database.pragma(`busy_timeout = ${busyTimeoutMs}`);
    useWal(database, busyTimeoutMs);
    return { db: database, owned: false };
  }
  if (typeof database !== 'string' || database === '') {
    throw new StorageConfigError(
      'SqliteUploadStore option "database" must be a better-sqlite3 Database instance or a database file path (or ":memory:").',
      { option: 'database' },
    );
  }
  let db: Database.Database;
  try {
    db = new Database(database, { timeout: busyTimeoutMs });
  } catch (error) {
    // better-sqlite3 loads its native module on the first `new Database()`.
    if (isAbiMismatch(error)) throw nativeModuleMismatch('better-sqlite3', error);
    throw new StorageConfigError(`SqliteUploadStore could not open the SQLite database "${database}": ${String(error)}. Check that its directory exists and is writable.`, {
      option: 'database',
      cause: error,
    });
  }
  try {
    db.pragma('foreign_keys = ON');
    useWal(db, busyTimeoutMs);
  } catch (error) {
    db.close();
    throw error;
  }
  return { db, owned: true };
}
