export type {
  ByteRange,
  CopyOptions,
  CreateMultipartOptions,
  DeleteManyOptions,
  DirectMultipartUploads,
  ListEntry,
  ListOptions,
  ObjectStat,
  OpenOptions,
  PendingWrite,
  PendingWriteQuery,
  PresignUploadOptions,
  PresignedPost,
  PresignedUpload,
  SaveOptions,
  SaveResult,
  SignedUploadRequest,
  Storage,
  StorageContent,
  StorageUrl,
  UploadedPart,
  UrlOptions,
} from './types.js';
export * from './errors.js';
export {
  MAX_KEY_BYTES,
  MAX_SEGMENT_BYTES,
  alternativeName,
  encodeKeyForUrl,
  getValidName,
  validateKey,
  validatePrefix,
  type ValidNameOptions,
} from './keys.js';
export { attachmentDisposition, resolveContentType } from './content.js';
export { MemoryStorage, type MemoryStorageOptions } from './storage/memory/index.js';
export * from './upload/index.js';
export * from './env/index.js';
