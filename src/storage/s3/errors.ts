/**
 * The one place where S3 SDK errors become typed storage errors. Providers disagree: AWS says
 * `NoSuchKey` on GET and a bare `NotFound` on HEAD, MinIO and Ceph mostly follow, R2 and some
 * gateways answer 403 for a missing key when the caller may not list the bucket.
 */
import {
  ObjectNotFoundError,
  StorageAbortedError,
  StorageConfigError,
  StorageError,
  StoragePermissionError,
  StorageWriteError,
  isStorageError,
} from '../../errors.js';

interface SdkErrorShape {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const shape = (error: unknown): SdkErrorShape =>
  typeof error === 'object' && error !== null ? (error as SdkErrorShape) : {};

/** The S3 error code (`NoSuchKey`, `PreconditionFailed`, …) and HTTP status of an SDK error. */
export function s3ErrorInfo(error: unknown): { code: string | undefined; status: number | undefined } {
  const e = shape(error);
  return { code: e.Code ?? e.name ?? e.code, status: e.$metadata?.httpStatusCode };
}

/** The object does not exist (any provider's way of saying so). */
export function isS3NotFound(error: unknown): boolean {
  const { code, status } = s3ErrorInfo(error);
  return code === 'NoSuchKey' || code === 'NotFound' || (status === 404 && code !== 'NoSuchBucket');
}

/** A conditional write lost: the key exists (`If-None-Match: *`), or a concurrent write raced. */
export function isS3PreconditionFailed(error: unknown): boolean {
  const { code, status } = s3ErrorInfo(error);
  // 409 ConditionalRequestConflict: AWS's answer when a conflicting conditional write is in flight.
  return status === 412 || code === 'PreconditionFailed' || code === 'ConditionalRequestConflict';
}

/**
 * The provider rejected the `If-None-Match` header itself (it does not support conditional
 * writes): OpenStack Swift answers 501 NotImplemented; some gateways a 400 that names the header.
 */
export function isS3ConditionalUnsupported(error: unknown): boolean {
  const { code, status } = s3ErrorInfo(error);
  if (status === 501 || code === 'NotImplemented') return true;
  const message = shape(error).message ?? '';
  return status === 400 && (code === 'InvalidRequest' || code === 'InvalidArgument') && /if-none-match|conditional/iu.test(message);
}

/**
 * Whether trying again may succeed: the server did not answer (a network error, a timeout),
 * answered 5xx, or asked us to slow down (429, SlowDown). A 4xx answer is final.
 */
export function isS3Transient(error: unknown): boolean {
  const { code, status } = s3ErrorInfo(error);
  if (status === undefined) return true;
  return status >= 500 || status === 429 || code === 'SlowDown' || code === 'RequestTimeout';
}

/** The server answered with a 4xx: the request was refused, so it stored nothing. */
export function isS3Refused(error: unknown): boolean {
  const { status } = s3ErrorInfo(error);
  return status !== undefined && status >= 400 && status < 500;
}

const HINTS: Record<string, string> = {
  NoSuchBucket: 'the bucket does not exist: create it, or fix the bucket name (AWS_STORAGE_BUCKET_NAME)',
  InvalidAccessKeyId: 'the access key id is unknown to the server: check AWS_ACCESS_KEY_ID',
  SignatureDoesNotMatch:
    'the signature does not match: check the secret key, the region (AWS_S3_REGION_NAME) and the addressing style (AWS_S3_ADDRESSING_STYLE)',
  AuthorizationHeaderMalformed: 'the region in the signature is wrong: check AWS_S3_REGION_NAME',
  PermanentRedirect: 'the bucket lives in another region or needs another endpoint: check AWS_S3_REGION_NAME',
  InvalidLocationConstraint: 'the server does not accept this region: check AWS_S3_REGION_NAME',
  RequestTimeTooSkewed: "the machine's clock is off by more than 15 minutes: fix the system time",
  ExpiredToken: 'the session token has expired: refresh the credentials',
};

/** The fix for a configuration error code, in words; undefined when the code is not one. */
export function s3ConfigHint(code: string | undefined): string | undefined {
  return code === undefined ? undefined : HINTS[code];
}

/**
 * Translate an SDK error into a {@link StorageError}. `action` is a verb phrase for the
 * message ("read", "write", "delete", …); `write` selects {@link StorageWriteError} for
 * failures that are not otherwise classified.
 */
export function toStorageError(
  error: unknown,
  context: { key?: string | undefined; bucket: string; action: string; write?: boolean; signal?: AbortSignal | undefined },
): StorageError {
  const { key, bucket, action } = context;
  if (context.signal?.aborted === true) return new StorageAbortedError(key, { cause: context.signal.reason ?? error });
  if (isStorageError(error)) return error;
  const { code, status } = s3ErrorInfo(error);
  if (code === 'AbortError') return new StorageAbortedError(key, { cause: error });
  const target = key === undefined ? `bucket "${bucket}"` : `key "${key}" in bucket "${bucket}"`;
  const hint = s3ConfigHint(code);
  if (hint !== undefined) {
    return new StorageConfigError(`Could not ${action} ${target}: ${hint} (S3 said ${code}).`, { key, cause: error });
  }
  // On a write, a 404 is about the upload (NoSuchUpload), not a missing object.
  if (key !== undefined && context.write !== true && isS3NotFound(error)) return new ObjectNotFoundError(key, { cause: error });
  if (status === 403 || code === 'AccessDenied') {
    return new StoragePermissionError(
      `Access denied to ${action} ${target}. Check the credentials' policy; note that without ` +
        's3:ListBucket a missing key is reported as 403 instead of 404.',
      { key, cause: error },
    );
  }
  // A service error carries $metadata; anything else (a network error, a failing source
  // stream) is described by its own message.
  const reason =
    status !== undefined
      ? `S3 answered ${code ?? 'an error'} (HTTP ${status})`
      : error instanceof Error
        ? error.message
        : String(error);
  const message = `Could not ${action} ${target}: ${reason}.`;
  return context.write === true
    ? new StorageWriteError(`${message} Nothing was kept; retry, or check the server.`, { key, cause: error })
    : new StorageError(message, 'E_STORAGE', { key, cause: error });
}
