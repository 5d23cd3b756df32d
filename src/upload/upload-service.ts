import { createHash } from 'node:crypto';
import { Transform, pipeline } from 'node:stream';
import { MAX_NAME_ATTEMPTS, attachmentDisposition, discard, normalizeContent, toStream } from '../content.js';
import { isStorageAbortedError } from '../errors.js';
import { alternativeName, getValidName } from '../keys.js';
import type { Storage, StorageContent, StorageUrl, UrlOptions } from '../types.js';
import { InvalidTransitionError, UploadFailedError, UploadNotFoundError, isStorageKeyTakenError } from './errors.js';
import type { UploadBatch, UploadErrorCode, UploadFile, UploadFileStatus } from './model.js';
import {
  DEFAULT_ATTACHMENT_TYPES,
  DEFAULT_MAX_SIZE_BYTES,
  renderKeyTemplate,
  uploadContentType,
  uuidv7,
  type UploadServiceOptions,
} from './options.js';
import type { UnitOfWork, UploadRepository } from './ports.js';
import { cleanupExpiredFiles, notifyExpiringFiles, type CleanupOptions, type CleanupReport } from './expiry.js';
import { AGGREGATE_TYPE, fileStoredPayload } from './payloads.js';
import { reconcileUploads, type ReconcileOptions, type ReconcileReport } from './reconcile.js';

export interface UploadServiceDeps extends UploadServiceOptions {
  storage: Storage;
  /** Reads and single writes outside a transaction. */
  repository: UploadRepository;
  /** The transaction boundary for a record's move to `stored` with its `file.stored` event. */
  unitOfWork: UnitOfWork;
  /** @default () => new Date() */
  clock?: () => Date;
}

export interface CreateUploadFileInput {
  content: StorageContent;
  /** The user's filename; cleaned with getValidName() for the key, kept as is in the record. */
  filename: string;
  /** The declared type (e.g. from the multipart part); see `uploadContentType` for how far it is trusted. */
  contentType?: string;
  uploadedBy?: string;
  batchId?: string;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (bytesRead: number) => void;
}

export { AGGREGATE_TYPE } from './payloads.js';

class FileTooLarge extends Error {
  override name = 'FileTooLarge';
}

const LIVE: UploadFileStatus[] = ['stored', 'processed'];
const HOUR = 3600_000;

/**
 * Validates, streams, hashes, stores, records and announces uploads (Doorito PEP 0006). A
 * file reaches `stored` together with its `file.stored` event, in one transaction; on any
 * failure the stored object is deleted and the record marked `failed`, so there is never an
 * event without a file, nor a file without a record.
 */
export class UploadService {
  readonly #storage: Storage;
  readonly #repository: UploadRepository;
  readonly #unitOfWork: UnitOfWork;
  readonly #clock: () => Date;
  readonly #maxSizeBytes: number;
  readonly #allowedTypes: ReadonlySet<string> | null;
  readonly #keyTemplate: string;
  readonly #ttlHours: number;
  readonly #notifyHours: number;
  readonly #attachmentTypes: ReadonlySet<string>;

  constructor(deps: UploadServiceDeps) {
    this.#storage = deps.storage;
    this.#repository = deps.repository;
    this.#unitOfWork = deps.unitOfWork;
    this.#clock = deps.clock ?? (() => new Date());
    this.#maxSizeBytes = deps.maxSizeBytes ?? DEFAULT_MAX_SIZE_BYTES;
    this.#allowedTypes = deps.allowedTypes == null ? null : new Set(deps.allowedTypes);
    this.#keyTemplate = deps.keyTemplate ?? 'uploads/%Y/%m/';
    this.#ttlHours = deps.ttlHours ?? 24;
    this.#notifyHours = deps.expiryNotifyHours ?? 1;
    this.#attachmentTypes = new Set(deps.attachmentTypes ?? DEFAULT_ATTACHMENT_TYPES);
  }

  /**
   * Store one upload. Validation failures (`invalid_filename`, `file_type_not_allowed`,
   * `file_too_large`) return a `failed` record and store nothing; storage or database failures
   * throw (`UploadFailedError`, or `StorageAbortedError` for an abort) after cleaning up.
   */
  async createUploadFile(input: CreateUploadFileInput): Promise<UploadFile> {
    const now = this.#clock();
    const source = normalizeContent(input.content);
    const base: UploadFile = {
      id: uuidv7(now),
      ...(input.batchId === undefined ? {} : { batchId: input.batchId }),
      ...(input.uploadedBy === undefined ? {} : { uploadedBy: input.uploadedBy }),
      storageKey: '',
      originalFilename: input.filename,
      contentType: 'application/octet-stream',
      sizeBytes: 0,
      sha256: '',
      metadata: { ...input.metadata },
      status: 'uploading',
      createdAt: now,
      updatedAt: now,
    };
    let name: string;
    try {
      name = getValidName(input.filename);
    } catch (error) {
      return this.#refuse(base, source, 'invalid_filename', error instanceof Error ? error.message : String(error));
    }
    const contentType = uploadContentType(name, input.contentType);
    const file: UploadFile = { ...base, contentType, storageKey: renderKeyTemplate(this.#keyTemplate, now) + name };
    if (!this.#allows(contentType)) {
      return this.#refuse(file, source, 'file_type_not_allowed', `Files of type ${contentType} are not accepted.`);
    }
    if (source.size !== undefined && source.size > this.#maxSizeBytes) {
      return this.#refuse(file, source, 'file_too_large', this.#tooLargeMessage());
    }
    // The record exists, holding its key, before any byte is stored: after a crash at any
    // point, whatever the storage holds is under a key a record names.
    let recorded: UploadFile;
    try {
      recorded = await this.#record(file);
    } catch (error) {
      discard(source);
      throw new UploadFailedError(file.id, `Could not record upload "${file.originalFilename}"; nothing was stored.`, { cause: error });
    }
    return this.#store(recorded, name, source, input);
  }

  /** Create the record under its key, or a free alternative when another live upload holds it. */
  async #record(file: UploadFile): Promise<UploadFile> {
    let candidate = file;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#repository.createFile(candidate);
        return candidate;
      } catch (error) {
        if (!isStorageKeyTakenError(error) || attempt >= MAX_NAME_ATTEMPTS) throw error;
        candidate = { ...file, storageKey: alternativeName(file.storageKey) };
      }
    }
  }

  /** `allowedTypes` entries are exact types or `type/*` wildcards. */
  #allows(contentType: string): boolean {
    if (this.#allowedTypes === null) return true;
    if (this.#allowedTypes.has(contentType)) return true;
    return this.#allowedTypes.has(`${contentType.split('/')[0] ?? ''}/*`);
  }

  async #refuse(file: UploadFile, source: ReturnType<typeof normalizeContent>, code: UploadErrorCode, message: string) {
    discard(source);
    const failed: UploadFile = { ...file, status: 'failed', errorCode: code, errorMessage: message };
    await this.#repository.createFile(failed);
    return failed;
  }

  #tooLargeMessage(): string {
    return `The file is larger than the limit of ${this.#maxSizeBytes} bytes.`;
  }

  async #store(file: UploadFile, name: string, source: ReturnType<typeof normalizeContent>, input: CreateUploadFileInput) {
    const hash = createHash('sha256');
    let size = 0;
    const max = this.#maxSizeBytes;
    // Hash and count in one pass; past the limit, stop reading (the storage then aborts its write).
    // A Transform, not an async generator: destroying a Readable.from(generator) waits for the
    // generator to return, which a generator stuck awaiting a stalled source never does (Node 24
    // then hangs an aborted save forever).
    const guard = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > max) {
          callback(new FileTooLarge());
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    // The source's errors reach the storage through the guard; the guard's failure (or the
    // storage's abort, which destroys it) stops the source.
    pipeline(toStream(source), guard, () => undefined);
    const attachment = this.#attachmentTypes.has(file.contentType);
    // The storage asks before it writes under a key other than the one the record holds (its
    // name was taken there): the record moves to it first, so it always names what is stored.
    let held = file.storageKey;
    const reserveKey = async (candidate: string): Promise<boolean> => {
      if (candidate === held) return true;
      if (!(await this.#repository.claimStorageKey(file.id, candidate, this.#clock()))) return false;
      held = candidate;
      return true;
    };
    let key: string;
    try {
      ({ key } = await this.#storage.save(file.storageKey, guard, {
        reserveKey,
        contentType: file.contentType,
        ...(attachment ? { contentDisposition: attachmentDisposition(name) } : {}),
        ...(input.signal === undefined ? {} : { signal: input.signal }),
        ...(input.onProgress === undefined ? {} : { onProgress: input.onProgress }),
      }));
    } catch (error) {
      discard(source);
      if (size > max) return this.#fail(file.id, 'file_too_large', this.#tooLargeMessage());
      const aborted = isStorageAbortedError(error);
      await this.#fail(file.id, aborted ? 'aborted' : 'storage_error', error instanceof Error ? error.message : String(error)).catch(() => undefined);
      if (aborted) throw error;
      throw new UploadFailedError(file.id, `Could not store upload "${file.originalFilename}"; nothing was kept.`, { key: file.storageKey, cause: error });
    }
    try {
      const sha256 = hash.digest('hex');
      const shared = await this.#storage.signedUrl(key, attachment ? { download: name } : {});
      return await this.#unitOfWork.transaction(async (tx) => {
        const stored = await tx.repository.updateFile(
          file.id,
          { status: 'stored', storageKey: key, sizeBytes: size, sha256, contentType: file.contentType },
          { expectedStatus: 'uploading', now: this.#clock() },
        );
        if (stored === undefined) throw new Error(`upload file ${file.id} is no longer uploading`);
        await tx.outbox.emit({ aggregateType: AGGREGATE_TYPE, aggregateId: file.id, eventType: 'file.stored', payload: { ...fileStoredPayload(stored, shared) } });
        return stored;
      });
    } catch (error) {
      // Never a stored object without its record moving to stored, nor an event without the object.
      await this.#storage.delete(key).catch(() => undefined);
      await this.#fail(file.id, 'storage_error', error instanceof Error ? error.message : String(error)).catch(() => undefined);
      throw new UploadFailedError(file.id, `Could not record upload "${file.originalFilename}"; the stored file was removed.`, {
        key,
        cause: error,
      });
    }
  }

  async #fail(id: string, code: UploadErrorCode, message: string): Promise<UploadFile> {
    const failed = await this.#repository.updateFile(id, { status: 'failed', errorCode: code, errorMessage: message }, { now: this.#clock() });
    if (failed === undefined) throw new UploadNotFoundError('file', id);
    return failed;
  }

  async #get(id: string): Promise<UploadFile> {
    const file = await this.#repository.getFile(id);
    if (file === undefined) throw new UploadNotFoundError('file', id);
    return file;
  }

  /** stored → processed, only while still stored. */
  async markFileProcessed(id: string): Promise<UploadFile> {
    const updated = await this.#repository.updateFile(id, { status: 'processed' }, { expectedStatus: 'stored', now: this.#clock() });
    if (updated !== undefined) return updated;
    throw new InvalidTransitionError(id, (await this.#get(id)).status, 'processed');
  }

  /** Mark a file failed with an error code and message (e.g. from a processing step). */
  async markFileFailed(id: string, error: { code: UploadErrorCode; message: string } | Error): Promise<UploadFile> {
    const code = error instanceof Error ? 'processing_error' : error.code;
    return this.#fail(id, code, error.message);
  }

  /** Delete the object (already gone is fine), then mark the record `deleted`. */
  async markFileDeleted(id: string): Promise<UploadFile> {
    const file = await this.#get(id);
    if (file.status === 'deleted') return file;
    if (file.storageKey !== '') await this.#storage.delete(file.storageKey);
    const deleted = await this.#repository.updateFile(id, { status: 'deleted' }, { now: this.#clock() });
    if (deleted === undefined) throw new UploadNotFoundError('file', id);
    return deleted;
  }

  /** A fresh shareable URL for a stored (or processed) file. */
  async getFileUrl(id: string, options: UrlOptions = {}): Promise<StorageUrl> {
    const file = await this.#get(id);
    if (!LIVE.includes(file.status)) throw new InvalidTransitionError(id, file.status, 'shared by URL');
    const download = options.download ?? (this.#attachmentTypes.has(file.contentType) ? getValidName(file.originalFilename) : undefined);
    return this.#storage.signedUrl(file.storageKey, { ...options, ...(download === undefined ? {} : { download }) });
  }

  /** Create a batch; the same idempotency key returns the same batch. */
  async createBatch(input: { createdBy?: string; idempotencyKey?: string } = {}): Promise<UploadBatch> {
    const now = this.#clock();
    const id = uuidv7(now);
    return this.#repository.createBatch({
      id,
      ...(input.createdBy === undefined ? {} : { createdBy: input.createdBy }),
      status: 'init',
      idempotencyKey: input.idempotencyKey ?? id,
      createdAt: now,
      updatedAt: now,
    });
  }

  /** `complete` when every file is stored or processed, `failed` when all failed or none came, else `partial`. */
  async finalizeBatch(id: string): Promise<UploadBatch> {
    if ((await this.#repository.getBatch(id)) === undefined) throw new UploadNotFoundError('batch', id);
    const files = await this.#repository.listBatchFiles(id);
    const ok = files.filter((f) => LIVE.includes(f.status)).length;
    const status = files.length > 0 && ok === files.length ? 'complete' : ok === 0 ? 'failed' : 'partial';
    const batch = await this.#repository.updateBatch(id, { status }, this.#clock());
    if (batch === undefined) throw new UploadNotFoundError('batch', id);
    return batch;
  }

  /**
   * Delete the objects and records of files older than the TTL, in any status (including
   * `uploading` records left by a crash mid-upload), up to `batchSize` per call, a page of up
   * to 1,000 at a time: one query, one `storage.deleteMany()` and one batched record delete
   * per page. A file whose object cannot be deleted is kept and reported in `failures`; the
   * next call tries it again. Only objects that live files hold are deleted; what a failed
   * upload may have left is an orphan for `reconcile()`.
   * @example
   * let report = await uploads.cleanupExpiredUploadFiles()
   * while (report.remaining > report.failures.length && report.deleted > 0) report = await uploads.cleanupExpiredUploadFiles()
   */
  async cleanupExpiredUploadFiles(options: CleanupOptions = {}): Promise<CleanupReport> {
    const expiredBefore = new Date(this.#clock().getTime() - (options.ttlHours ?? this.#ttlHours) * HOUR);
    return cleanupExpiredFiles({ storage: this.#storage, repository: this.#repository, expiredBefore }, options);
  }

  /**
   * Repair what crashes, outages and lost clean-ups left, at most `limit` items per step:
   * 1. `uploading` records older than the grace period are marked failed (`interrupted`);
   * 2. unfinished writes under the upload prefix (S3 multipart uploads and claims, FS temp
   *    files) older than it are removed;
   * 3. objects under the upload prefix that no live record owns, older than it, are deleted;
   * 4. `stored`/`processed` records whose object is gone are marked failed (`object_missing`).
   * With `dryRun`, only counts. Call it again with the returned `cursor` until it has none.
   * The upload prefix is the fixed start of `keyTemplate` (`uploads/`): keep other data out of it.
   * @example
   * let report = await uploads.reconcile()
   * while (report.cursor) report = await uploads.reconcile({ cursor: report.cursor })
   */
  async reconcile(options: ReconcileOptions = {}): Promise<ReconcileReport> {
    const fixed = this.#keyTemplate.slice(0, this.#keyTemplate.includes('%') ? this.#keyTemplate.indexOf('%') : undefined);
    const uploadPrefix = fixed.slice(0, fixed.lastIndexOf('/') + 1);
    return reconcileUploads({ storage: this.#storage, repository: this.#repository, uploadPrefix, now: this.#clock() }, options);
  }

  /** Emit `file.expiring` once per live file that expires within `notifyHours`. */
  async notifyExpiringFiles(options: { ttlHours?: number; notifyHours?: number } = {}): Promise<{ notified: number; skipped: number }> {
    return notifyExpiringFiles({
      repository: this.#repository,
      unitOfWork: this.#unitOfWork,
      now: this.#clock(),
      ttlMs: (options.ttlHours ?? this.#ttlHours) * HOUR,
      notifyMs: (options.notifyHours ?? this.#notifyHours) * HOUR,
      shareUrl: (file) => this.getFileUrl(file.id),
    });
  }
}
