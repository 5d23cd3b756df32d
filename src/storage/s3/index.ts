export { S3Storage } from './s3-storage.js';
export { DEFAULT_MEMORY_BUDGET, MemoryBudget, type MemoryBudgetStats } from './memory-budget.js';
export type {
  S3NoOverwriteStrategy,
  S3ObjectParameters,
  S3StorageClientOptions,
  S3StorageInjectedClientOptions,
  S3StorageOptions,
} from './options.js';
export { isS3NotFound, isS3PreconditionFailed, s3ErrorInfo, toStorageError } from './errors.js';
