export type {
  ByteRange,
  CopyOptions,
  DeleteManyOptions,
  ListEntry,
  ListOptions,
  ObjectStat,
  OpenOptions,
  PendingWrite,
  PendingWriteQuery,
  SaveOptions,
  SaveResult,
  Storage,
  StorageContent,
  StorageUrl,
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
