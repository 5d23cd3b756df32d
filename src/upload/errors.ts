import { StorageError } from '../errors.js';
import type { UploadFileStatus } from './model.js';

/** Storing or recording an upload failed; nothing was kept, and the record (if any) is `failed`. */
export class UploadFailedError extends StorageError {
  override name = 'UploadFailedError';
  /** The upload file record, marked `failed` (when the repository still worked). */
  readonly fileId: string;
  constructor(fileId: string, message: string, options: { key?: string | undefined; cause?: unknown } = {}) {
    super(message, 'E_UPLOAD_FAILED', options);
    this.fileId = fileId;
  }
}

/** No upload file (or batch) with that id. */
export class UploadNotFoundError extends StorageError {
  override name = 'UploadNotFoundError';
  readonly id: string;
  constructor(what: 'file' | 'batch', id: string) {
    super(`No upload ${what} with id "${id}".`, 'E_UPLOAD_NOT_FOUND');
    this.id = id;
  }
}

/** The file is not in a status that allows this change (e.g. processed before stored). */
export class InvalidTransitionError extends StorageError {
  override name = 'InvalidTransitionError';
  readonly fileId: string;
  readonly status: UploadFileStatus;
  constructor(fileId: string, status: UploadFileStatus, wanted: string) {
    super(`Upload file "${fileId}" is ${status}; it cannot become ${wanted}.`, 'E_INVALID_TRANSITION');
    this.fileId = fileId;
    this.status = status;
  }
}

/**
 * Another live upload (`uploading`, `stored` or `processed`) holds the storage key, so this
 * record may not name it: two live records with one key would let one upload replace the other's
 * object. Nothing was changed.
 */
export class StorageKeyTakenError extends StorageError {
  override name = 'StorageKeyTakenError';
  /** The storage key that is taken. */
  declare readonly key: string;
  constructor(key: string, options: { cause?: unknown } = {}) {
    super(
      `Storage key "${key}" is taken: another live upload (uploading, stored or processed) holds it. ` +
        `Claim a different key (claimStorageKey), or mark that upload failed or deleted first.`,
      'E_KEY_TAKEN',
      { key, cause: options.cause },
    );
  }
}

/**
 * The direct upload's time ran out before it was completed: its URLs have expired, and the
 * record is `failed` (`expired`) with whatever arrived removed. Start a new one.
 */
export class DirectUploadExpiredError extends StorageError {
  override name = 'DirectUploadExpiredError';
  readonly fileId: string;
  /** When its URLs expired. */
  readonly expiredAt: Date;
  constructor(fileId: string, expiredAt: Date, options: { key?: string | undefined } = {}) {
    super(
      `Direct upload "${fileId}" expired at ${expiredAt.toISOString()} before it was completed; it is marked failed and what arrived was removed. Start a new upload.`,
      'E_UPLOAD_EXPIRED',
      options,
    );
    this.fileId = fileId;
    this.expiredAt = expiredAt;
  }
}

/**
 * The bytes of a direct upload have not (all) arrived yet: no object, or multipart parts
 * missing. Nothing changed: the record is still `uploading`, so the client may send what is
 * missing and complete again before it expires.
 */
export class DirectUploadIncompleteError extends StorageError {
  override name = 'DirectUploadIncompleteError';
  readonly fileId: string;
  /** The part numbers still missing (multipart), else empty. */
  readonly missingParts: readonly number[];
  constructor(fileId: string, message: string, options: { key?: string | undefined; missingParts?: readonly number[]; cause?: unknown } = {}) {
    super(message, 'E_UPLOAD_INCOMPLETE', options);
    this.fileId = fileId;
    this.missingParts = options.missingParts ?? [];
  }
}

export const isDirectUploadExpiredError = (error: unknown): error is DirectUploadExpiredError =>
  error instanceof DirectUploadExpiredError || (error instanceof Error && error.name === 'DirectUploadExpiredError');
export const isDirectUploadIncompleteError = (error: unknown): error is DirectUploadIncompleteError =>
  error instanceof DirectUploadIncompleteError || (error instanceof Error && error.name === 'DirectUploadIncompleteError');
export const isUploadFailedError = (error: unknown): error is UploadFailedError =>
  error instanceof UploadFailedError || (error instanceof Error && error.name === 'UploadFailedError');
export const isUploadNotFoundError = (error: unknown): error is UploadNotFoundError =>
  error instanceof UploadNotFoundError || (error instanceof Error && error.name === 'UploadNotFoundError');
export const isInvalidTransitionError = (error: unknown): error is InvalidTransitionError =>
  error instanceof InvalidTransitionError || (error instanceof Error && error.name === 'InvalidTransitionError');
export const isStorageKeyTakenError = (error: unknown): error is StorageKeyTakenError =>
  error instanceof StorageKeyTakenError || (error instanceof Error && error.name === 'StorageKeyTakenError');
