/**
 * The UploadService's maintenance: after crashes, lost clean-ups and outages, bring the
 * storage and the records back into agreement. Each step is bounded per call.
 */
import { ObjectNotFoundError, isObjectNotFoundError, isStorageDeleteError, type DeleteFailure } from '../errors.js';
import type { PendingWrite, Storage } from '../types.js';
import { directUploadDeadline } from './direct-upload.js';
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
  /**
   * `uploading` records past the grace period (their process died): marked failed,
   * `interrupted`; direct uploads only once past their deadline too, as `expired`.
   */
  interruptedUploads: number;
  /** Unfinished writes past the grace period (S3 multipart uploads and claims, FS temp files): removed. */
  pendingWrites: number;
  /** Objects under the upload prefix that no live record owns, past the grace period: deleted. */
  orphanObjects: number;
  /** `stored`/`processed` records whose object is gone: marked failed, `object_missing`. */
  missingObjects: number;
  /** Orphan objects that could not be deleted (the storage's error for each): the next round finds them again. */
  failures: DeleteFailure[];
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
/** Orphan keys per query and batched delete (S3's DeleteObjects takes up to 1,000). */
const ORPHAN_PAGE_SIZE = 1000;
/** Objects of live records checked at once. */
const STAT_CONCURRENCY = 8;

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

  // 1. Records of uploads whose process died, and direct uploads past their deadline (a direct
  //    upload's client may take until then): they release their keys, so step 3 sees the
  //    objects they left as unowned.
  const stale = await repository.findFiles({ createdBefore: staleBefore, statuses: ['uploading'], limit });
  const due = stale.filter((file) => file.directUpload === undefined || directUploadDeadline(file.directUpload) < now.getTime());
  // A dry run counts as if step 1 had run: those records' keys are no longer owned.
  const released = new Set(due.map((file) => file.storageKey));
  if (!dryRun) {
    const interrupted = due.filter((file) => file.directUpload === undefined).map((file) => file.id);
    const expired = due.filter((file) => file.directUpload !== undefined).map((file) => file.id);
    if (interrupted.length > 0) {
      await repository.failFiles(interrupted, { code: 'interrupted', message: 'The upload never finished (its process stopped); found by reconcile().' }, {
        expectedStatuses: ['uploading'],
        now,
      });
    }
    if (expired.length > 0) {
      await repository.failFiles(expired, { code: 'expired', message: 'The direct upload was never completed before its deadline; found by reconcile().' }, {
        expectedStatuses: ['uploading'],
        now,
      });
    }
  }

  // 2. Unfinished writes: multipart uploads, claims, temp files; but not those of a live
  //    upload (a direct upload's multipart upload lives as long as the upload may).
  let pendingWrites = 0;
  let listedWrites = 0;
  // Claims are objects too: step 3 must not count them again.
  const claims = new Set<string>();
  if (storage.listPendingWrites !== undefined && storage.removePendingWrite !== undefined) {
    const writes: PendingWrite[] = [];
    for await (const write of storage.listPendingWrites({ prefix: uploadPrefix, startedBefore: staleBefore })) {
      writes.push(write);
      if (writes.length >= limit) break;
    }
    listedWrites = writes.length;
    const owned = writes.length === 0 ? new Set<string>() : await repository.findLiveStorageKeys([...new Set(writes.map((write) => write.key))]);
    for (const write of writes) {
      if (owned.has(write.key) && !released.has(write.key)) continue;
      if (!dryRun) await storage.removePendingWrite(write);
      if (write.kind === 'claim') claims.add(write.key);
      pendingWrites += 1;
    }
  }

  // Steps 1 and 2 start over on each call; say that there is more when they stopped at the
  // limit and did something (what they skip, live uploads' writes, they would meet again).
  if ((stale.length >= limit && due.length > 0) || (listedWrites >= limit && pendingWrites > 0)) next.again = true;
  // When step 2 stopped early, an empty object may be a claim it did not reach: leave those to it.
  const claimsUnseen = listedWrites >= limit;

  // 3. Objects no live record owns, a page of keys at a time: one query and one batched
  //    delete per page. Keys that could not be deleted are reported, and found again next round.
  let orphanObjects = 0;
  const failures: DeleteFailure[] = [];
  if (uploadPrefix !== '') {
    let examined = 0;
    let page: Array<{ key: string; size: number; lastModified: Date }> = [];
    const settle = async (): Promise<void> => {
      const owned = await repository.findLiveStorageKeys(page.map((entry) => entry.key));
      const orphans = page.filter(
        (entry) =>
          !((claimsUnseen && entry.size === 0) || claims.has(entry.key) || (owned.has(entry.key) && !released.has(entry.key)) || !(entry.lastModified < staleBefore)),
      );
      page = [];
      if (orphans.length === 0) return;
      orphanObjects += orphans.length;
      if (dryRun) return;
      try {
        await storage.deleteMany(orphans.map((entry) => entry.key));
      } catch (error) {
        if (!isStorageDeleteError(error)) throw error;
        failures.push(...error.failures);
      }
    };
    for await (const entry of storage.list(uploadPrefix, cursor.object === undefined ? {} : { startAfter: cursor.object })) {
      page.push(entry);
      examined += 1;
      if (page.length >= ORPHAN_PAGE_SIZE) await settle();
      if (examined >= limit) {
        next.object = entry.key;
        break;
      }
    }
    await settle();
  }

  // 4. Live records whose object is gone.
  const after = cursor.record === undefined ? undefined : { createdAt: new Date(cursor.record.createdAt), id: cursor.record.id };
  const live = await repository.listFiles({ limit, statuses: ['stored', 'processed'], ...(after === undefined ? {} : { after }) });
  // A few HEADs at a time, in the page's order.
  const gone = new Array<boolean>(live.length).fill(false);
  let taken = 0;
  const worker = async (): Promise<void> => {
    for (let i = taken++; i < live.length; i = taken++) gone[i] = await isMissing(storage, live[i] as UploadFile);
  };
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, live.length) }, worker));
  const missing = live.filter((_, i) => gone[i]).map((file) => file.id);
  if (!dryRun && missing.length > 0) {
    await repository.failFiles(
      missing,
      { code: 'object_missing', message: 'The stored object (at the record\'s storageKey) is gone; found by reconcile().' },
      { expectedStatuses: ['stored', 'processed'], now },
    );
  }
  const last = live.at(-1);
  if (live.length >= limit && last !== undefined) next.record = { createdAt: last.createdAt.toISOString(), id: last.id };

  const more = next.again === true || next.object !== undefined || next.record !== undefined;
  return {
    dryRun,
    interruptedUploads: due.length,
    pendingWrites,
    orphanObjects,
    missingObjects: missing.length,
    failures,
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
