// How the API shows an upload file.

/** Statuses of a file that has bytes to download. */
export const LIVE = ['stored', 'processed'];

/** A file as the API shows it. */
export function fileJson(file) {
  return {
    id: file.id,
    original_filename: file.originalFilename,
    content_type: file.contentType,
    size_bytes: file.sizeBytes,
    sha256: file.sha256,
    status: file.status,
    error_code: file.errorCode ?? null,
    batch_id: file.batchId ?? null,
    created_at: file.createdAt.toISOString(),
    download_url: LIVE.includes(file.status) ? `/uploads/${file.id}/download` : null,
  };
}

