/**
 * The UploadService's expiry: deleting files past their TTL, page by page (one query, one
 * batched storage delete and one batched record delete per page), and announcing the ones
 * about to expire.
 */
import { isStorageDeleteError, type StorageError } from '../errors.js';
import type { Storage, StorageUrl } from '../types.js';
import type { FileExpiringPayload, UploadFile, UploadFileStatus } from './model.js';
import { AGGREGATE_TYPE, fileStoredPayload } from './payloads.js';
import { heldStorageKey, type FileQuery, type UnitOfWork, type UploadRepository } from './ports.js';

/** Options of `UploadService.cleanupExpiredUploadFiles()`. */
export interface CleanupOptions {
  /** @default the service's `ttlHours` (24) */
  ttlHours?: number;
  /** At most this many files per call, taken in pages of up to 1,000. @default 1000 */
  batchSize?: number;
}

/** A file whose object could not be deleted: it is kept, and the next call tries again. */
export interface CleanupFailure {
  fileId: string;
  key: string;
  error: StorageError;
}

/** What `cleanupExpiredUploadFiles()` did. */
export interface CleanupReport {
  /** Files whose object and record were deleted. */
  deleted: number;
  /** Expired files still there (failures included): call again while it is above 0. */
  remaining: number;
  /** Files kept because their object could not be deleted (the storage's error for each). */
  failures: CleanupFailure[];
}

/** The most files per page: S3's DeleteObjects takes up to 1,000 keys. */
export const CLEANUP_PAGE_SIZE = 1000;
const ALL: UploadFileStatus[] = ['uploading', 'stored', 'processed', 'failed', 'deleted'];

export interface ExpiryDeps {
  storage: Storage;
  repository: UploadRepository;
  /** Files created before this have expired. */
  expiredBefore: Date;
}

/**
 * Delete the objects, then the records, of expired files. Only the object a live file holds is
 * deleted: a failed or deleted file holds no key, and another file may hold that key by now
 * (the object it left, if any, is an orphan that `reconcile()` removes after its grace period).
 * Objects go before records, so a crash in between leaves a record whose object is gone,
 * which the next call deletes; never an object without its record.
 */
export async function cleanupExpiredFiles(deps: ExpiryDeps, options: CleanupOptions = {}): Promise<CleanupReport> {
  const { storage, repository } = deps;
  const query: Omit<FileQuery, 'limit'> = { createdBefore: deps.expiredBefore, statuses: ALL };
  let left = options.batchSize ?? 1000;
  let deleted = 0;
  const failures: CleanupFailure[] = [];
  while (left > 0) {
    const limit = Math.min(CLEANUP_PAGE_SIZE, left);
    const page = await repository.findFiles({ ...query, limit });
    if (page.length === 0) break;
    left -= page.length;
    const failed = await deleteObjects(storage, page);
    const done: string[] = [];
    for (const file of page) {
      const key = heldStorageKey(file);
      const error = key === undefined ? undefined : failed.get(key);
      if (key !== undefined && error !== undefined) failures.push({ fileId: file.id, key, error });
      else done.push(file.id);
    }
    deleted += await repository.deleteFiles(done);
    // A failed key would be first in the next page again: leave it to the next call.
    if (failed.size > 0 || page.length < limit) break;
  }
  return { deleted, remaining: await repository.countFiles(query), failures };
}

/** Delete the objects `files` hold; returns the keys that could not be deleted, with why. */
async function deleteObjects(storage: Storage, files: readonly UploadFile[]): Promise<Map<string, StorageError>> {
  const keys = new Set<string>();
  for (const file of files) {
    const key = heldStorageKey(file);
    if (key !== undefined) keys.add(key);
  }
  const failed = new Map<string, StorageError>();
  if (keys.size === 0) return failed;
  try {
    await storage.deleteMany(keys);
  } catch (error) {
    if (!isStorageDeleteError(error)) throw error;
    for (const failure of error.failures) failed.set(failure.key, failure.error);
  }
  return failed;
}

export interface NotifyDeps {
  repository: UploadRepository;
  unitOfWork: UnitOfWork;
  now: Date;
  ttlMs: number;
  notifyMs: number;
  /** A fresh shareable URL for a live file. */
  shareUrl: (file: UploadFile) => Promise<StorageUrl>;
}

/** Emit `file.expiring` once per live file that expires within `notifyMs` (idempotent per file). */
export async function notifyExpiringFiles(deps: NotifyDeps): Promise<{ notified: number; skipped: number }> {
  const now = deps.now.getTime();
  const files = await deps.repository.findFiles({
    createdFrom: new Date(now - deps.ttlMs),
    createdBefore: new Date(now - deps.ttlMs + deps.notifyMs),
    statuses: ['stored', 'processed'],
    limit: Number.MAX_SAFE_INTEGER,
  });
  let notified = 0;
  let skipped = 0;
  for (const file of files) {
    const shared = await deps.shareUrl(file);
    const payload: FileExpiringPayload = { ...fileStoredPayload(file, shared), expires_at: new Date(file.createdAt.getTime() + deps.ttlMs).toISOString() };
    const result = await deps.unitOfWork.transaction((tx) =>
      tx.outbox.emit({ aggregateType: AGGREGATE_TYPE, aggregateId: file.id, eventType: 'file.expiring', payload: { ...payload } }),
    );
    if (result.duplicate) skipped += 1;
    else notified += 1;
  }
  return { notified, skipped };
}
