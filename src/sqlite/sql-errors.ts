/** SQLite errors the store translates, matched in this one place. */

/**
 * A violation of the live storage-key index. SQLite names the column, not the index
 * ("UNIQUE constraint failed: upload_file.storage_key"); that index is the only UNIQUE one on
 * the column. https://www.sqlite.org/rescode.html#constraint_unique
 */
export function isLiveKeyViolation(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE' && error.message.includes('upload_file.storage_key');
}
