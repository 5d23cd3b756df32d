/**
 * Direct uploads: the client sends the bytes straight to the storage (a presigned S3 PUT, S3
 * multipart parts, or the filesystem's signed upload URL), and the app only signs and checks.
 * The whole protocol, top to bottom, each step with its failure handling:
 *
 * 1. initiate: check name, type and declared size as for any upload; create the `uploading`
 *    record holding the exact key (so nothing the client sends is ever untracked); for
 *    multipart, start the upload and keep its id in the record; presign.
 * 2. (multipart) presign parts in batches, each of its exact size; list what arrived.
 * 3. complete: check the object itself (it exists, its size and type are the declared ones,
 *    its bytes hash to the declared checksums), then `uploading → stored` with `file.stored`
 *    in one transaction. Other bytes: the record is `failed` and the object deleted.
 * 4. abort, or expiry: the record is `failed`, the multipart upload aborted, the object deleted.
 *
 * Every later step is authorised by the file id alone: the record holds the key, the declared
 * size and checksums, the upload id and the expiry.
 */
import { createHash } from 'node:crypto';
import { MAX_NAME_ATTEMPTS, attachmentDisposition, resolveContentType } from '../content.js';
import { StorageConfigError, isObjectNotFoundError } from '../errors.js';
import { alternativeName } from '../keys.js';
import type { PresignedPost, PresignedUpload, Storage, UploadedPart } from '../types.js';
import { DirectUploadExpiredError, DirectUploadIncompleteError, InvalidTransitionError, UploadFailedError, UploadNotFoundError } from './errors.js';
import type { DirectUploadState, UploadErrorCode, UploadFile } from './model.js';
import type { UploadRepository } from './ports.js';
import type { UploadDescription } from './upload-service.js';

/** What `createDirectUpload()` takes: the upload's description and what the client declares about its bytes. */
export interface CreateDirectUploadInput extends UploadDescription {
  /** The exact size in bytes; the storage accepts no other. */
  size: number;
  /** Base64 MD5 of the bytes (as in `Content-MD5`). A PUT must send it, and the server refuses other bytes. */
  md5?: string;
  /** Hex SHA-256 of the bytes; completion refuses other bytes. */
  sha256?: string;
  /**
   * `put`: one presigned PUT. `post`: a presigned POST form, for plain HTML forms (storages
   * with `presignPost` only; not OpenStack Swift). `multipart`: presigned parts (storages with
   * `multipartUploads` only). `auto`: multipart from `multipartThreshold` up, where the storage
   * has it, else a PUT.
   * @default 'auto'
   */
  method?: 'auto' | 'put' | 'post' | 'multipart';
}

/** How the client sends the bytes of a multipart direct upload. */
export interface MultipartUploadTarget {
  method: 'multipart';
  /** Bytes per part; the last part holds the rest. */
  partSize: number;
  partCount: number;
  /** When its part URLs stop working (each presigned part URL says so too). */
  expiresAt: Date;
}

/** What `createDirectUpload()` returns: the `uploading` record and where to send the bytes. */
export type DirectUpload =
  | { file: UploadFile; upload: PresignedUpload | PresignedPost | MultipartUploadTarget }
  /** Refused (name, type or size): the `failed` record, and nothing to upload to. */
  | { file: UploadFile; upload?: undefined };

/** A presigned part of a multipart direct upload. */
export interface PresignedPart extends PresignedUpload {
  partNumber: number;
  /** The part's exact size, bound into its signature. */
  size: number;
}

/** How long after its URLs expire a direct upload may still be completed: for a PUT that started just before. */
export const DIRECT_UPLOAD_COMPLETE_GRACE_MS = 15 * 60_000;
/** The last instant (ms) a direct upload may be completed: its URLs' expiry and the grace. */
export const directUploadDeadline = (state: Pick<DirectUploadState, 'expiresAt'>): number => state.expiresAt.getTime() + DIRECT_UPLOAD_COMPLETE_GRACE_MS;

/** Uploads from this size up go multipart by default (as Uppy's `shouldUseMultipart` does). */
export const DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 ** 2;
/** Parts presigned per call, at most. */
export const MAX_PARTS_PER_PRESIGN = 1000;
const MIB = 1024 ** 2;
/** At least 8 MiB per part, at most 10,000 parts (S3's limit), in whole MiB. */
export function choosePartSize(size: number): number {
  return Math.max(8 * MIB, Math.ceil(size / 10_000 / MIB) * MIB);
}

const MD5_BASE64 = /^[A-Za-z0-9+/]{22}==$/u;
const SHA256_HEX = /^[0-9a-f]{64}$/u;

/** What the protocol needs from the UploadService. */
export interface DirectUploadDeps {
  storage: Storage;
  repository: UploadRepository;
  clock: () => Date;
  /** Lifetime of the presigned URLs, in seconds. */
  expiresIn: number;
  multipartThreshold: number;
  /** See `UploadServiceOptions.directUploadVerify`. */
  verify: 'read' | 'etag';
  attachmentTypes: ReadonlySet<string>;
  /** Check name, type and size: the new record and its file name, or the failed record. */
  check(input: UploadDescription, size: number | undefined): { file: UploadFile; name: string } | { refusal: UploadFile };
  /** Create a refused upload's failed record. */
  refuse(failed: UploadFile): Promise<UploadFile>;
  /** Create the record under its key or a free alternative one. */
  record(file: UploadFile): Promise<UploadFile>;
  /** `uploading → stored` with `file.stored`, in one transaction. */
  commitStored(file: UploadFile, stored: { key: string; size: number; sha256: string }): Promise<UploadFile>;
}

export class DirectUploads {
  readonly #deps: DirectUploadDeps;

  constructor(deps: DirectUploadDeps) {
    this.#deps = deps;
  }

  /** 1. Check, record, claim the exact key, presign. */
  async create(input: CreateDirectUploadInput): Promise<DirectUpload> {
    const { storage, repository } = this.#deps;
    const checked = this.#deps.check(input, Number.isSafeInteger(input.size) ? input.size : undefined);
    if ('refusal' in checked) return { file: await this.#deps.refuse(checked.refusal) };
    const { file, name } = checked;
    const declared = declaredProblem(input);
    if (declared !== undefined) return { file: await this.#deps.refuse({ ...file, status: 'failed', errorCode: declared.code, errorMessage: declared.message }) };
    const method = this.#method(input);
    const multipart = method === 'multipart';
    const now = this.#deps.clock();
    const expiresIn = this.#deps.expiresIn;
    const state: DirectUploadState = {
      method,
      size: input.size,
      expiresAt: new Date(Math.floor(now.getTime() / 1000) * 1000 + expiresIn * 1000),
      ...(input.md5 === undefined ? {} : { md5: input.md5 }),
      ...(input.sha256 === undefined ? {} : { sha256: input.sha256 }),
      ...(multipart ? { partSize: choosePartSize(input.size) } : {}),
    };
    let recorded: UploadFile;
    try {
      recorded = await this.#deps.record({ ...file, directUpload: state });
      recorded = await this.#freeKey(recorded);
    } catch (error) {
      await this.#markFailed(file.id, 'storage_error', error);
      throw new UploadFailedError(file.id, `Could not record direct upload "${file.originalFilename}"; nothing can be uploaded.`, { cause: error });
    }
    const disposition = this.#deps.attachmentTypes.has(recorded.contentType) ? attachmentDisposition(name) : undefined;
    try {
      if (method === 'post') {
        const post = storage.presignPost as NonNullable<Storage['presignPost']>;
        const upload = await post.call(storage, recorded.storageKey, {
          contentType: recorded.contentType,
          size: input.size,
          expiresIn,
          ...(disposition === undefined ? {} : { contentDisposition: disposition }),
        });
        return { file: recorded, upload };
      }
      if (!multipart) {
        const upload = await storage.presignUpload(recorded.storageKey, {
          contentType: recorded.contentType,
          size: input.size,
          expiresIn,
          ...(input.md5 === undefined ? {} : { md5: input.md5 }),
          ...(disposition === undefined ? {} : { contentDisposition: disposition }),
        });
        return { file: recorded, upload };
      }
      const multipartUploads = storage.multipartUploads as NonNullable<Storage['multipartUploads']>;
      const { uploadId } = await multipartUploads.create(recorded.storageKey, {
        contentType: recorded.contentType,
        ...(disposition === undefined ? {} : { contentDisposition: disposition }),
      });
      // A crash before this update leaves the upload under a key the record holds: maintenance
      // finds it as a pending write (it lists multipart uploads by prefix) and aborts it.
      const withId = await repository.updateFile(recorded.id, { directUpload: { ...state, uploadId } }, { expectedStatus: 'uploading', now: this.#deps.clock() });
      if (withId === undefined) {
        await multipartUploads.abort(recorded.storageKey, uploadId).catch(() => undefined);
        throw new Error(`upload file ${recorded.id} is no longer uploading`);
      }
      const partSize = state.partSize as number;
      return { file: withId, upload: { method: 'multipart', partSize, partCount: partCount(input.size, partSize), expiresAt: state.expiresAt } };
    } catch (error) {
      await this.#markFailed(recorded.id, 'storage_error', error);
      throw new UploadFailedError(recorded.id, `Could not start direct upload "${recorded.originalFilename}"; nothing can be uploaded.`, {
        key: recorded.storageKey,
        cause: error,
      });
    }
  }

  #method(input: CreateDirectUploadInput): DirectUploadState['method'] {
    const { storage } = this.#deps;
    const has = storage.multipartUploads !== undefined;
    const method = input.method ?? 'auto';
    if (method === 'multipart' && !has) {
      throw new StorageConfigError('createDirectUpload(): method "multipart" needs a storage with multipartUploads (S3); use "put" or "auto".', { option: 'method' });
    }
    if (method === 'post' && storage.presignPost === undefined) {
      throw new StorageConfigError('createDirectUpload(): method "post" needs a storage with presignPost (S3); use "put" or "auto".', { option: 'method' });
    }
    if (method === 'auto') return has && input.size >= this.#deps.multipartThreshold ? 'multipart' : 'put';
    if (method !== 'put' && method !== 'post' && method !== 'multipart') {
      throw new StorageConfigError(`createDirectUpload(): method must be "auto", "put", "post" or "multipart"; got ${JSON.stringify(method)}.`, { option: 'method' });
    }
    return method;
  }

  /**
   * The record holds its key against other records; an object already there (an orphan a
   * crash left, or another app's) must not be replaced either, so move to a free name.
   */
  async #freeKey(file: UploadFile): Promise<UploadFile> {
    let current = file;
    for (let attempt = 1; await this.#deps.storage.exists(current.storageKey); attempt += 1) {
      if (attempt >= MAX_NAME_ATTEMPTS) throw new Error(`no free storage key near "${file.storageKey}" after ${attempt} attempts`);
      const candidate = alternativeName(file.storageKey);
      if (await this.#deps.repository.claimStorageKey(file.id, candidate, this.#deps.clock())) current = { ...current, storageKey: candidate };
    }
    return current;
  }

  /** The live direct upload `id`, or the typed error that says why there is none. */
  async #uploading(id: string, want: 'multipart' | undefined): Promise<UploadFile & { directUpload: DirectUploadState }> {
    const file = await this.#deps.repository.getFile(id);
    if (file === undefined) throw new UploadNotFoundError('file', id);
    const state = file.directUpload;
    if (state === undefined) throw new InvalidTransitionError(id, file.status, 'handled as a direct upload (it was not created by createDirectUpload)');
    if (want === 'multipart' && state.method !== 'multipart') throw new InvalidTransitionError(id, file.status, 'sent in parts (it is a single PUT)');
    if (file.status !== 'uploading') throw new InvalidTransitionError(id, file.status, 'uploaded to');
    await this.#expireIfLate({ ...file, directUpload: state });
    return { ...file, directUpload: state };
  }

  /** Past its deadline: fail it, remove what arrived, and say so. */
  async #expireIfLate(file: UploadFile & { directUpload: DirectUploadState }): Promise<void> {
    const { expiresAt } = file.directUpload;
    if (this.#deps.clock().getTime() <= directUploadDeadline(file.directUpload)) return;
    await this.#discard(file, 'expired', `The direct upload expired at ${expiresAt.toISOString()} before it was completed.`);
    throw new DirectUploadExpiredError(file.id, expiresAt, { key: file.storageKey });
  }

  /** 2. Presigned PUTs for these parts (1-based), each bound to its exact size. */
  async presignParts(id: string, partNumbers: readonly number[]): Promise<PresignedPart[]> {
    const file = await this.#uploading(id, 'multipart');
    const { size, partSize, uploadId, expiresAt } = file.directUpload as Required<DirectUploadState>;
    const count = partCount(size, partSize);
    if (partNumbers.length > MAX_PARTS_PER_PRESIGN) {
      throw new StorageConfigError(`presignDirectUploadParts(): at most ${MAX_PARTS_PER_PRESIGN} parts per call; got ${partNumbers.length}.`, { option: 'partNumbers' });
    }
    const left = Math.floor((expiresAt.getTime() - this.#deps.clock().getTime()) / 1000);
    if (left < 1) throw new DirectUploadExpiredError(id, expiresAt, { key: file.storageKey });
    const multipart = this.#deps.storage.multipartUploads as NonNullable<Storage['multipartUploads']>;
    return Promise.all(
      partNumbers.map(async (partNumber) => {
        if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > count) {
          throw new StorageConfigError(`presignDirectUploadParts(): part ${String(partNumber)} does not exist; upload "${id}" has parts 1 to ${count}.`, { option: 'partNumbers' });
        }
        const partBytes = partNumber < count ? partSize : size - partSize * (count - 1);
        const signed = await multipart.presignPart(file.storageKey, uploadId, { partNumber, size: partBytes, expiresIn: Math.min(left, this.#deps.expiresIn) });
        return { ...signed, partNumber, size: partBytes };
      }),
    );
  }

  /** The parts that arrived so far (to resume an upload). */
  async listParts(id: string): Promise<UploadedPart[]> {
    const file = await this.#uploading(id, 'multipart');
    const multipart = this.#deps.storage.multipartUploads as NonNullable<Storage['multipartUploads']>;
    return multipart.listParts(file.storageKey, file.directUpload.uploadId as string);
  }

  /** 3. Check the object the client sent, then `uploading → stored` with `file.stored`. */
  async complete(id: string): Promise<UploadFile> {
    const found = await this.#deps.repository.getFile(id);
    if (found === undefined) throw new UploadNotFoundError('file', id);
    if (found.directUpload !== undefined && found.status !== 'uploading') return found; // done already: the same answer again
    const file = await this.#uploading(id, undefined);
    const state = file.directUpload;
    if (state.method === 'multipart') await this.#completeParts(file);
    const { storage } = this.#deps;
    let stat;
    try {
      stat = await storage.stat(file.storageKey);
    } catch (error) {
      if (isObjectNotFoundError(error)) {
        throw new DirectUploadIncompleteError(id, `Nothing has arrived for direct upload "${id}" yet: send the bytes, then complete it.`, { key: file.storageKey });
      }
      throw new UploadFailedError(id, `Could not check direct upload "${id}"; it is still uploading, complete it again.`, { key: file.storageKey, cause: error });
    }
    if (stat.size !== state.size) return this.#discard(file, 'size_mismatch', `The storage holds ${stat.size} bytes; ${state.size} were declared.`);
    // The signature bound the type on every storage; a stored type that is only the storage's
    // guess from the extension means it keeps none (the filesystem), not that the client chose it.
    if (stat.contentType.toLowerCase() !== file.contentType.toLowerCase() && stat.contentType !== resolveContentType(file.storageKey)) {
      return this.#discard(file, 'type_mismatch', `The storage holds type ${stat.contentType}; ${file.contentType} was declared.`);
    }
    // A single object's ETag is the MD5 of its bytes (S3, Ceph, Swift): compared here, it spares
    // hashing the MD5 again; a multipart ETag is not, so there the read computes it.
    const etagMd5 = state.method === 'multipart' || stat.etag === undefined ? undefined : md5OfEtag(stat.etag);
    const etagChecked = state.md5 !== undefined && etagMd5 !== undefined;
    if (etagChecked && etagMd5 !== state.md5) {
      return this.#discard(file, 'checksum_mismatch', 'The stored bytes do not match the declared MD5.');
    }
    let digests: { sha256: string; md5: string | undefined };
    try {
      // The server checked the bytes against the declared MD5: take the declared SHA-256 as theirs.
      const proven = this.#deps.verify === 'etag' && etagChecked && state.sha256 !== undefined;
      digests = proven ? { sha256: state.sha256 as string, md5: undefined } : await this.#hash(file.storageKey, state.md5 !== undefined && !etagChecked);
    } catch (error) {
      throw new UploadFailedError(id, `Could not read direct upload "${id}" to check it; it is still uploading, complete it again.`, { key: file.storageKey, cause: error });
    }
    if (state.sha256 !== undefined && digests.sha256 !== state.sha256) return this.#discard(file, 'checksum_mismatch', 'The stored bytes do not match the declared SHA-256.');
    if (digests.md5 !== undefined && digests.md5 !== state.md5) return this.#discard(file, 'checksum_mismatch', 'The stored bytes do not match the declared MD5.');
    try {
      return await this.#deps.commitStored(file, { key: file.storageKey, size: stat.size, sha256: digests.sha256 });
    } catch (error) {
      // Another complete of the same upload may have won: then its answer is ours.
      const now = await this.#deps.repository.getFile(id).catch(() => undefined);
      if (now !== undefined && now.status !== 'uploading') return now;
      throw new UploadFailedError(id, `Could not record direct upload "${id}" as stored; it is still uploading, complete it again.`, { key: file.storageKey, cause: error });
    }
  }

  /** Every part is there, of its exact size: join them. A lost answer to a join that happened is fine. */
  async #completeParts(file: UploadFile & { directUpload: DirectUploadState }): Promise<void> {
    const { size, partSize, uploadId } = file.directUpload as Required<DirectUploadState>;
    const multipart = this.#deps.storage.multipartUploads as NonNullable<Storage['multipartUploads']>;
    let parts: UploadedPart[];
    try {
      parts = await multipart.listParts(file.storageKey, uploadId);
    } catch (error) {
      // Joined already (by an earlier complete whose answer was lost): the object is checked next.
      if (await this.#deps.storage.exists(file.storageKey).catch(() => false)) return;
      throw new UploadFailedError(file.id, `Could not list the parts of direct upload "${file.id}"; it is still uploading, complete it again.`, { key: file.storageKey, cause: error });
    }
    const count = partCount(size, partSize);
    const have = new Set(parts.map((part) => part.partNumber));
    const missing: number[] = [];
    for (let n = 1; n <= count; n += 1) if (!have.has(n)) missing.push(n);
    if (missing.length > 0) {
      const listed = missing.length > 10 ? `${missing.slice(0, 10).join(', ')} and ${missing.length - 10} more` : missing.join(', ');
      throw new DirectUploadIncompleteError(file.id, `Direct upload "${file.id}" is missing part(s) ${listed} of ${count}: send them, then complete it.`, {
        key: file.storageKey,
        missingParts: missing,
      });
    }
    try {
      await multipart.complete(file.storageKey, uploadId, parts.filter((part) => part.partNumber <= count));
    } catch (error) {
      if (await this.#deps.storage.exists(file.storageKey).catch(() => false)) return;
      throw new UploadFailedError(file.id, `Could not join the parts of direct upload "${file.id}"; it is still uploading, complete it again.`, { key: file.storageKey, cause: error });
    }
  }

  /** Stream the object once, hashing as it goes: memory stays flat whatever the size. */
  async #hash(key: string, withMd5: boolean): Promise<{ sha256: string; md5: string | undefined }> {
    const sha256 = createHash('sha256');
    const md5 = withMd5 ? createHash('md5') : undefined;
    for await (const chunk of await this.#deps.storage.open(key)) {
      sha256.update(chunk as Buffer);
      md5?.update(chunk as Buffer);
    }
    return { sha256: sha256.digest('hex'), md5: md5?.digest('base64') };
  }

  /** 4. Abort by the client: the record is failed and whatever arrived removed. */
  async abort(id: string): Promise<UploadFile> {
    const file = await this.#deps.repository.getFile(id);
    if (file === undefined) throw new UploadNotFoundError('file', id);
    if (file.directUpload === undefined) throw new InvalidTransitionError(id, file.status, 'aborted as a direct upload');
    if (file.status !== 'uploading') return file;
    return this.#discard({ ...file, directUpload: file.directUpload }, 'aborted', 'The direct upload was aborted.');
  }

  /**
   * Fail the record first (a failed record holds no key, so whatever is left is an orphan
   * that maintenance removes), then abort the multipart upload and delete the object.
   */
  async #discard(file: UploadFile & { directUpload: DirectUploadState }, code: UploadErrorCode, message: string): Promise<UploadFile> {
    const { repository, storage, clock } = this.#deps;
    const failed = await repository.updateFile(file.id, { status: 'failed', errorCode: code, errorMessage: message }, { expectedStatus: 'uploading', now: clock() });
    if (failed === undefined) return (await repository.getFile(file.id)) ?? file;
    const { uploadId } = file.directUpload;
    if (uploadId !== undefined) await storage.multipartUploads?.abort(file.storageKey, uploadId).catch(() => undefined);
    await storage.delete(file.storageKey).catch(() => undefined);
    return failed;
  }

  async #markFailed(id: string, code: UploadErrorCode, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    await this.#deps.repository.updateFile(id, { status: 'failed', errorCode: code, errorMessage: message }, { now: this.#deps.clock() }).catch(() => undefined);
  }
}

function partCount(size: number, partSize: number): number {
  return Math.max(1, Math.ceil(size / partSize));
}

/** A declared checksum or size that cannot be right: the code and message of its refusal. */
function declaredProblem(input: CreateDirectUploadInput): { code: UploadErrorCode; message: string } | undefined {
  if (!Number.isSafeInteger(input.size) || input.size < 0) return { code: 'invalid_size', message: `The declared size must be a whole number of bytes; got ${String(input.size)}.` };
  if (input.md5 !== undefined && !MD5_BASE64.test(input.md5)) return { code: 'invalid_checksum', message: 'The declared MD5 must be base64 of 16 bytes (as in Content-MD5).' };
  if (input.sha256 !== undefined && !SHA256_HEX.test(input.sha256)) return { code: 'invalid_checksum', message: 'The declared SHA-256 must be 64 lowercase hex digits.' };
  return undefined;
}

/** The base64 MD5 an ETag is, or `undefined` when it is none (SSE-KMS, multipart, the filesystem's): then the read decides. */
function md5OfEtag(etag: string): string | undefined {
  const hex = etag.replaceAll('"', '').toLowerCase();
  return /^[0-9a-f]{32}$/u.test(hex) ? Buffer.from(hex, 'hex').toString('base64') : undefined;
}
