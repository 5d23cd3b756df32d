import type { PutObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ByteCounter, toStream, type NormalizedContent } from '../../content.js';

/** User-metadata name that marks an empty object as a pending name claim. */
export const CLAIM_METADATA = 'doorito-claim';

export interface UploadStreamOptions {
  client: S3Client;
  params: PutObjectCommandInput;
  source: NormalizedContent;
  partSize: number;
  queueSize: number;
  signal: AbortSignal | undefined;
  onProgress: ((bytes: number) => void) | undefined;
}

/**
 * Stream `source` into one object with lib-storage's `Upload` (multipart past one part).
 *
 * We never hand our signal to `Upload`'s own abortController: its `done()` then rejects at
 * once while AbortMultipartUpload is still in flight, so parts could outlive our promise.
 * Instead an abort destroys the body stream; `Upload` then waits for its in-flight parts,
 * sends AbortMultipartUpload, and only then rejects. When this function rejects, no
 * multipart upload is left open.
 */
export async function uploadStream(options: UploadStreamOptions): Promise<{ etag: string | undefined; size: number }> {
  const { source, signal } = options;
  const body = new ByteCounter(options.onProgress);
  const input = toStream(source);
  input.on('error', (error) => body.destroy(error));
  input.pipe(body);
  const onAbort = (): void => {
    const reason: unknown = signal?.reason;
    body.destroy(reason instanceof Error ? reason : Object.assign(new Error('The save was aborted'), { name: 'AbortError' }));
    input.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const upload = new Upload({
      client: options.client,
      params: { ...options.params, Body: body, ...(source.size === undefined ? {} : { ContentLength: source.size }) },
      partSize: options.partSize,
      queueSize: options.queueSize,
      leavePartsOnError: false,
    });
    const result = await upload.done();
    return { etag: result.ETag, size: body.bytes };
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
