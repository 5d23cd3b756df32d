/**
 * The UploadService's maintenance: after crashes, lost clean-ups and outages, bring the
 * storage and the records back into agreement. Each step is bounded per call.
 */
import { ObjectNotFoundError, isObjectNotFoundError } from '../errors.js';
import type { Storage } from '../types.js';
import type { UploadFile } from './model.js';
import type { UploadRepository } from './ports.js';

/** Options of `UploadService.reconcile()`. */
export interface ReconcileOptions {
  /** Count what would be done, and change nothing. @default false */
  dryRun?: boolean;
  /**
   * Leave alone whatever is younger than this: uploads still in flight. An `uploading` record,
   * a pending write or an unowned object older than this is taken for a leftover.
   * @default 24
   */
  graceHours?: number;
  /** At most this many items per step and call. @default 1000 */
  limit?: number;
  /** Where the previous call stopped (its `cursor`). */
  cursor?: string;
}

/** What `reconcile()` found (and, unless `dryRun`, repaired). */
export interface ReconcileReport {
  dryRun: boolean;
  /** `uploading` records past the grace period (their process died): marked failed, `interrupted`. */
  interruptedUploads: number;
  /** Unfinished writes past the grace period (S3 multipart uploads and claims, FS temp files): removed. */
  pendingWrites: number;
  /** Objects under the upload prefix that no live record owns, past the grace period: deleted. */
  orphanObjects: number;
  /** `stored`/`processed` records whose object is gone: marked failed, `object_missing`. */
  missingObjects: number;
  /** Pass it to the next call to go on where this one stopped; absent when a full round has ended. */
  cursor?: string;
}

interface Cursor {
  /** Steps 1 or 2 stopped at their limit: call again (they start over, having removed what they did). */
  again?: true;
  /** The last object key examined. */
  object?: string;
  /** The last live record examined (newest first). */
  record?: { createdAt: string; id: string };
}

const HOUR = 3600_000;

function decodeCursor(cursor: string | undefined): Cursor {
  if (cursor === undefined || cursor === '') return {};
  try {
    return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Cursor;
  } catch {
    return {};
  }
}

export interface ReconcileDeps {
  storage: Storage;
  repository: UploadRepository;
  /** The fixed start of every upload key (`uploads/` for `uploads/%Y/%m/`); '' disables the orphan step. */
  uploadPrefix: string;
  now: Date;
}

export async function reconcileUploads(deps: ReconcileDeps, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const { storage, repository, uploadPrefix, now } = deps;
  const dryRun = options.dryRun ?? false;
  const limit = options.limit ?? 1000;
  const staleBefore = new Date(now.getTime() - (options.graceHours ?? 24) * HOUR);
  const cursor = decodeCursor(options.cursor);
  const next: Cursor = {};

  // 1. Records of uploads whose process died: they release their keys, so step 3 sees the
  //    objects they left as unowned.
  const stale = await repository.findFiles({ createdBefore: staleBefore, statuses: ['uploading'], limit });
  // A dry run counts as if step 1 had run: those records' keys are no longer owned.
  const released = new Set(dryRun ? stale.map((file) => file.storageKey) : []);
  if (!dryRun) {
    for (const file of stale) {
      await repository.updateFile(
        file.id,
        { status: 'failed', errorCode: 'interrupted', errorMessage: 'The upload never finished (its process stopped); found by reconcile().' },
        { expectedStatus: 'uploading', now },
      );
    }
  }

  // 2. Unfinished writes: multipart uploads, claims, temp files.
  let pendingWrites = 0;
  // Claims are objects too: step 3 must not count them again.
  const claims = new Set<string>();
  if (storage.listPendingWrites !== undefined && storage.removePendingWrite !== undefined) {
    for await (const write of storage.listPendingWrites({ prefix: uploadPrefix, startedBefore: staleBefore })) {
      if (!dryRun) await storage.removePendingWrite(write);
      if (write.kind === 'claim') claims.add(write.key);
      pendingWrites += 1;
      if (pendingWrites >= limit) break;
    }
  }

  // Steps 1 and 2 start over on each call; say that there is more when they stopped at the limit.
  if (stale.length >= limit || pendingWrites >= limit) next.again = true;
  // When step 2 stopped early, an empty object may be a claim it did not reach: leave those to it.
  const claimsUnseen = pendingWrites >= limit;

  // 3. Objects no live record owns, a page of keys at a time.
  let orphanObjects = 0;
  if (uploadPrefix !== '') {
    let examined = 0;
    let page: Array<{ key: string; size: number; lastModified: Date }> = [];
    const settle = async (): Promise<void> => {
      const owned = await repository.findLiveStorageKeys(page.map((entry) => entry.key));
      for (const entry of page) {
        if ((claimsUnseen && entry.size === 0) || claims.has(entry.key) || (owned.has(entry.key) && !released.has(entry.key)) || !(entry.lastModified < staleBefore)) continue;
        if (!dryRun) await storage.delete(entry.key);
        orphanObjects += 1;
      }
      page = [];
    };
    for await (const entry of storage.list(uploadPrefix, cursor.object === undefined ? {} : { startAfter: cursor.object })) {
      page.push(entry);
      examined += 1;
      if (page.length >= 100) await settle();
      if (examined >= limit) {
        next.object = entry.key;
        break;
      }
    }
    await settle();
  }

  // 4. Live records whose object is gone.
  let missingObjects = 0;
  const after = cursor.record === undefined ? undefined : { createdAt: new Date(cursor.record.createdAt), id: cursor.record.id };
  const live = await repository.listFiles({ limit, statuses: ['stored', 'processed'], ...(after === undefined ? {} : { after }) });
  for (const file of live) {
    if (!(await isMissing(storage, file))) continue;
    missingObjects += 1;
    if (!dryRun) {
      await repository.updateFile(
        file.id,
        { status: 'failed', errorCode: 'object_missing', errorMessage: `The stored object "${file.storageKey}" is gone; found by reconcile().` },
        { expectedStatus: file.status, now },
      );
    }
  }
  const last = live.at(-1);
  if (live.length >= limit && last !== undefined) next.record = { createdAt: last.createdAt.toISOString(), id: last.id };

  const more = next.again === true || next.object !== undefined || next.record !== undefined;
  return {
    dryRun,
    interruptedUploads: stale.length,
    pendingWrites,
    orphanObjects,
    missingObjects,
    ...(more ? { cursor: Buffer.from(JSON.stringify(next)).toString('base64url') } : {}),
  };
}

async function isMissing(storage: Storage, file: UploadFile): Promise<boolean> {
  try {
    await storage.stat(file.storageKey);
    return false;
  } catch (error) {
    if (error instanceof ObjectNotFoundError || isObjectNotFoundError(error)) return true;
    throw error;
  }
}
