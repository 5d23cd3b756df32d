/** The check steps only an S3 storage has. Loaded, with the AWS SDK, only when S3 is configured. */
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { s3ConfigHint, s3ErrorInfo, toStorageError } from '../storage/s3/errors.js';
import { S3Storage } from '../storage/s3/s3-storage.js';
import type { Storage } from '../types.js';
import type { CheckStep } from './run-check.js';

const asS3 = (storage: Storage): S3Storage => {
  if (!(storage instanceof S3Storage)) throw new TypeError('expected an S3Storage');
  return storage;
};

/** HEAD the bucket: https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html has no body, so only the status tells. */
export async function reachBucket(storage: Storage): Promise<CheckStep> {
  const s3 = asS3(storage);
  const name = 'reach the bucket';
  try {
    await s3.client.send(new HeadBucketCommand({ Bucket: s3.bucket }));
    return { name, ok: true, status: 'ok', detail: `bucket "${s3.bucket}" answers` };
  } catch (error) {
    const { code, status } = s3ErrorInfo(error);
    const detail =
      status === 404
        ? `bucket "${s3.bucket}" does not exist: ${s3ConfigHint('NoSuchBucket')}`
        : status === 403
          ? `access to bucket "${s3.bucket}" is denied (HTTP 403): the credentials are wrong, or lack permission; the next step says more`
          : toStorageError(error, { bucket: s3.bucket, action: 'reach' }).message + (code === undefined ? '' : ` (${code})`);
    return { name, ok: false, status: 'fail', detail };
  }
}

/** What the server guarantees, as the probe write found out. */
export async function guarantees(storage: Storage): Promise<string> {
  const s3 = asS3(storage);
  const checksums = await s3.client.config.requestChecksumCalculation();
  const overwrite =
    s3.conditionalWrites === 'supported'
      ? 'conditional PutObject honoured: no-overwrite saves are atomic'
      : 'conditional PutObject refused (e.g. Swift, 501): HEAD-then-write, which two concurrent writers can race; the UploadService still keeps its uploads apart';
  return `${overwrite}; request checksums ${checksums}`;
}

export function destroy(storage: Storage): void {
  asS3(storage).destroy();
}
