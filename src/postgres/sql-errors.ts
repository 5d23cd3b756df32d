/** Postgres errors the store translates, matched in this one place. */
import { LIVE_STORAGE_KEY_INDEX } from '../upload/sql-rows.js';

/**
 * A violation of the live storage-key index: SQLSTATE 23505 (unique_violation) on that index,
 * not on another UNIQUE constraint (a duplicate id stays what it is).
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function isLiveKeyViolation(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, constraint } = error as { code?: unknown; constraint?: unknown };
  return code === '23505' && constraint === LIVE_STORAGE_KEY_INDEX;
}
