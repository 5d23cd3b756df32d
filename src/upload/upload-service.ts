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
import {
  DEFAULT_MULTIPART_THRESHOLD,
  DirectUploads,
  type CreateDirectUploadInput,
  type DirectUpload,
  type PresignedPart,
} from './direct-upload.js';
import { DEFAULT_UPLOAD_EXPIRES_IN, MAX_PRESIGN_EXPIRES_IN } from '../signed-upload.js';
import type { UploadedPart } from '../types.js';
import { StorageConfigError } from '../errors.js';

export interface UploadServiceDeps extends UploadServiceOptions {
  storage: Storage;
  /** Reads and single writes outside a transaction. */
  repository: UploadRepository;
  /** The transaction boundary for a record's move to `stored` with its `file.stored` event. */
  unitOfWork: UnitOfWork;
  /** @default () => new Date() */
  clock?: () => Date;
}

/** What an upload says about itself, through the app or direct. */
export interface UploadDescription {
  /** The user's filename; cleaned with getValidName() for the key, kept as is in the record. */
  filename: string;
  /** The declared type (e.g. from the multipart part); see `uploadContentType` for how far it is trusted. */
  contentType?: string;
  uploadedBy?: string;
  batchId?: string;
  metadata?: Record<string, string>;
}

export interface CreateUploadFileInput extends UploadDescription {
  content: StorageContent;
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
  readonly #direct: DirectUploads;

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
    const expiresIn = deps.directUploadExpiresIn ?? DEFAULT_UPLOAD_EXPIRES_IN;
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_PRESIGN_EXPIRES_IN) {
      throw new StorageConfigError(`directUploadExpiresIn must be a whole number of seconds from 1 to ${MAX_PRESIGN_EXPIRES_IN}; got ${String(expiresIn)}.`, {
        option: 'directUploadExpiresIn',
      });
    }
    const verify = deps.directUploadVerify ?? 'read';
    if (verify !== 'read' && verify !== 'etag') {
      throw new StorageConfigError(`directUploadVerify must be "read" or "etag"; got ${JSON.stringify(verify)}.`, { option: 'directUploadVerify' });
    }
    this.#direct = new DirectUploads({
      storage: this.#storage,
      repository: this.#repository,
      clock: this.#clock,
      expiresIn,
      multipartThreshold: deps.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD,
      verify,
      attachmentTypes: this.#attachmentTypes,
      check: (input, size) => this.#check(input, size),
      refuse: (failed) => this.#refuse(failed),
      record: (file) => this.#record(file),
      commitStored: (file, stored) => this.#commitStored(file, stored),
    });
  }

  /**
   * Start a direct upload: the client sends the bytes to the storage itself. The name, type and
   * declared size are checked as for `createUploadFile()` (a refusal returns the `failed`
   * record and no `upload`); the `uploading` record then holds the exact key, and `upload` says
   * where to send the bytes: a presigned PUT (its signature binds the key, type, size and MD5),
   * or, for large files on S3, a multipart upload (see `presignDirectUploadParts()`). Then call
   * `completeDirectUpload()`.
   * @example
   * const { file, upload } = await uploads.createDirectUpload({ filename: 'photo.png', size: 48213 })
   * if (upload?.method === 'PUT') await fetch(upload.url, { method: 'PUT', headers: upload.headers, body })
   * await uploads.completeDirectUpload(file.id)
   */
  async createDirectUpload(input: CreateDirectUploadInput): Promise<DirectUpload> {
    return this.#direct.create(input);
  }

  /**
   * Presigned PUTs for parts of a multipart direct upload (up to 1,000 per call), each bound
   * to its exact size: `partSize` bytes, the last one the rest.
   * @throws DirectUploadExpiredError once its URLs have expired
   */
  async presignDirectUploadParts(fileId: string, partNumbers: readonly number[]): Promise<PresignedPart[]> {
    return this.#direct.presignParts(fileId, partNumbers);
  }

  /** The parts of a multipart direct upload that have arrived (to resume it). */
  async listDirectUploadParts(fileId: string): Promise<UploadedPart[]> {
    return this.#direct.listParts(fileId);
  }

  /**
   * Finish a direct upload: check the object (it exists; its size and type are the declared
   * ones; its bytes hash to the declared MD5 and SHA-256, read once as a stream to compute the
   * sha256), join multipart parts, and move the record to `stored` with its `file.stored` event
   * in one transaction. Other bytes than declared: the record is `failed` (`size_mismatch`,
   * `type_mismatch`, `checksum_mismatch`), the object deleted, and that record returned.
   * Idempotent: once it has an answer, every call returns the same record.
   * @throws DirectUploadIncompleteError while bytes are missing (nothing changes; complete again)
   * @throws DirectUploadExpiredError past its deadline (the record is failed, `expired`)
   * @throws UploadNotFoundError for an unknown id
   */
  async completeDirectUpload(fileId: string): Promise<UploadFile> {
    return this.#direct.complete(fileId);
  }

  /** Abort a direct upload: the record is `failed` (`aborted`), whatever arrived removed. */
  async abortDirectUpload(fileId: string): Promise<UploadFile> {
    return this.#direct.abort(fileId);
  }

  /**
   * Store one upload. Validation failures (`invalid_filename`, `file_type_not_allowed`,
   * `file_too_large`) return a `failed` record and store nothing; storage or database failures
   * throw (`UploadFailedError`, or `StorageAbortedError` for an abort) after cleaning up.
   */
  async createUploadFile(input: CreateUploadFileInput): Promise<UploadFile> {
    const source = normalizeContent(input.content);
    const checked = this.#check(input, source.size);
    if ('refusal' in checked) return this.#refuse(checked.refusal, source);
    const { file, name } = checked;
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

  /**
   * The new `uploading` record of an upload and the name its key ends in, or the `failed` record
   * of one refused (not yet written): the filename, type and declared size are checked here,
   * the same for uploads through the app and direct ones.
   */
  #check(input: UploadDescription, size: number | undefined): { file: UploadFile; name: string } | { refusal: UploadFile } {
    const now = this.#clock();
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
    const refuse = (file: UploadFile, errorCode: UploadErrorCode, errorMessage: string) => ({
      refusal: { ...file, status: 'failed' as const, errorCode, errorMessage },
    });
    let name: string;
    try {
      name = getValidName(input.filename);
    } catch (error) {
      return refuse(base, 'invalid_filename', error instanceof Error ? error.message : String(error));
    }
    const contentType = uploadContentType(name, input.contentType);
    const file: UploadFile = { ...base, contentType, storageKey: renderKeyTemplate(this.#keyTemplate, now) + name };
    if (!this.#allows(contentType)) return refuse(file, 'file_type_not_allowed', `Files of type ${contentType} are not accepted.`);
    if (size !== undefined && size > this.#maxSizeBytes) return refuse(file, 'file_too_large', this.#tooLargeMessage());
    return { file, name };
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

  async #refuse(failed: UploadFile, source?: ReturnType<typeof normalizeContent>): Promise<UploadFile> {
    if (source !== undefined) discard(source);
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
      return await this.#commitStored(file, { key, size, sha256: hash.digest('hex') });
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

  /**
   * `uploading → stored` with its `file.stored` event, in one transaction.
   * @throws when the record is no longer `uploading`, or the transaction fails (nothing changed)
   */
  async #commitStored(file: UploadFile, stored: { key: string; size: number; sha256: string }): Promise<UploadFile> {
    const download = this.#attachmentTypes.has(file.contentType) ? getValidName(file.originalFilename) : undefined;
    const shared = await this.#storage.signedUrl(stored.key, download === undefined ? {} : { download });
    return this.#unitOfWork.transaction(async (tx) => {
      const updated = await tx.repository.updateFile(
        file.id,
        { status: 'stored', storageKey: stored.key, sizeBytes: stored.size, sha256: stored.sha256, contentType: file.contentType },
        { expectedStatus: 'uploading', now: this.#clock() },
      );
      if (updated === undefined) throw new Error(`upload file ${file.id} is no longer uploading`);
      await tx.outbox.emit({ aggregateType: AGGREGATE_TYPE, aggregateId: file.id, eventType: 'file.stored', payload: { ...fileStoredPayload(updated, shared) } });
      return updated;
    });
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
