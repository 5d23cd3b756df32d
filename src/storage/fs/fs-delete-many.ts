/**
 * `deleteMany()` on the filesystem: every key is validated before anything is touched, then the
 * files go with a bounded number of unlinks in flight, each through the storage's own `delete()`
 * (the same symlink checks; a missing file is fine). A key that fails is collected with its
 * error, never dropped, and the others still go.
 */
import { InvalidKeyError, StorageAbortedError, StorageDeleteError, StorageError, isStorageError, type DeleteFailure } from '../../errors.js';
import { validateKey } from '../../keys.js';

/** Unlinks in flight at once: enough to overlap the disk's latency, few enough to spare file handles. */
export const DELETE_CONCURRENCY = 16;

/** The keys, validated (all of them, before any is deleted) and de-duplicated, in first-seen order. */
function uniqueKeys(keys: Iterable<string>): string[] {
  if (typeof keys === 'string') throw new InvalidKeyError(keys, 'deleteMany() takes a list of keys, not one string: wrap it, deleteMany([key])');
  return [...new Set(Array.from(keys, (key) => validateKey(key)))];
}

function asStorageError(error: unknown, key: string): StorageError {
  if (isStorageError(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StorageError(`Could not delete key "${key}": ${reason}`, 'E_STORAGE', { key, cause: error });
}

/**
 * Delete `keys` with `remove` (the storage's `delete()`), at most {@link DELETE_CONCURRENCY} at
 * a time. Rejects with {@link StorageDeleteError} naming every key that failed (in input order);
 * once `signal` fires, the keys not yet started are reported as aborted.
 */
export async function deleteFiles(keys: Iterable<string>, remove: (key: string) => Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  const unique = uniqueKeys(keys);
  if (signal?.aborted === true) throw new StorageAbortedError(undefined, { cause: signal.reason });
  const failed = new Map<string, StorageError>();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let index = next; index < unique.length; index = next) {
      next += 1;
      const key = unique[index] as string;
      if (signal?.aborted === true) {
        failed.set(key, new StorageAbortedError(key, { cause: signal.reason }));
        continue;
      }
      try {
        await remove(key);
      } catch (error) {
        failed.set(key, asStorageError(error, key));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, unique.length) }, worker));
  if (failed.size === 0) return;
  const failures: DeleteFailure[] = unique.flatMap((key) => {
    const error = failed.get(key);
    return error === undefined ? [] : [{ key, error }];
  });
  throw new StorageDeleteError(failures);
}
