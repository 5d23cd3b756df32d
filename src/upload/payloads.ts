/** The payloads of the events the UploadService emits about a file. */
import type { StorageUrl } from '../types.js';
import type { FileStoredPayload, UploadFile } from './model.js';

/** The `aggregateType` of every event about an upload file. */
export const AGGREGATE_TYPE = 'UploadFile';

/** What `file.stored` (and, with `expires_at`, `file.expiring`) says about `file`. */
export function fileStoredPayload(file: UploadFile, shared: StorageUrl): FileStoredPayload {
  return {
    file_id: file.id,
    original_filename: file.originalFilename,
    content_type: file.contentType,
    size_bytes: file.sizeBytes,
    sha256: file.sha256,
    url: shared.url,
    storage_key: file.storageKey,
    ...(shared.expiresAt === undefined ? {} : { url_expires_at: shared.expiresAt.toISOString() }),
  };
}
