export { UploadService, AGGREGATE_TYPE, type CreateUploadFileInput, type UploadDescription, type UploadServiceDeps } from './upload-service.js';
export {
  DEFAULT_MULTIPART_THRESHOLD,
  DIRECT_UPLOAD_COMPLETE_GRACE_MS,
  choosePartSize,
  type CreateDirectUploadInput,
  type DirectUpload,
  type MultipartUploadTarget,
  type PresignedPart,
} from './direct-upload.js';
export type { ReconcileOptions, ReconcileReport } from './reconcile.js';
export type { CleanupFailure, CleanupOptions, CleanupReport } from './expiry.js';
export { MemoryUploadStore, type MemoryUploadStoreOptions } from './memory/index.js';
export { generateWebhookSecret } from './webhook-secret.js';
export {
  DEFAULT_ATTACHMENT_TYPES,
  DEFAULT_MAX_SIZE_BYTES,
  renderKeyTemplate,
  uploadContentType,
  uuidv7,
  type UploadServiceOptions,
} from './options.js';
export * from './errors.js';
export type * from './model.js';
export { ATTEMPT_LOG_LIMIT } from './model.js';
export {
  defaultIdempotencyKey,
  endpointSubscribes,
  LEASE_EXPIRED_MESSAGE,
  LIVE_FILE_STATUSES,
  NOTICE_EVENT_PREFIX,
  type ClaimedDelivery,
  type ClaimOptions,
  type CompletedDelivery,
  type DeliveryOutcome,
  type DeliveryQuery,
  type RecoveredEndpoint,
  type RotateSecretOptions,
  type EmitResult,
  type FilePage,
  type FileQuery,
  type NewOutboxEvent,
  type NewWebhookEndpoint,
  type OutboxEmitter,
  type OutboxStore,
  type UnitOfWork,
  type UploadFilePatch,
  type UploadRepository,
  type UploadTransaction,
} from './ports.js';
