/**
 * The bench's own bucket: created at the start, emptied and removed at the end (even on error).
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, DeleteBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3Storage } from '../src/storage/s3/index.js';
import { rawClient } from '../test/helpers/s3-client.js';
import { s3Cleanup } from '../test/helpers/s3-fixture.js';
import { MiB, type S3Settings } from './util.js';

export const PART_SIZE = 8 * MiB;
export const QUEUE_SIZE = 4;

/** Fail, rather than hang, when the server stops answering (a full memstore OSD just stalls). */
const requestHandler = { connectionTimeout: 5_000, requestTimeout: 60_000, throwOnRequestTimeout: true };

/** The storage under test; its client (same settings for both sides) also drives the raw SDK baselines. */
export function benchStorage(settings: S3Settings, bucket: string): S3Storage {
  return new S3Storage({
    bucket,
    endpoint: settings.endpoint,
    region: settings.region,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
    clientConfig: { requestHandler },
  });
}

/** The raw client that makes the bucket and drives the cleanup: the tests' own, with timeouts. */
export function adminClient(settings: S3Settings): S3Client {
  return rawClient(settings, { requestHandler });
}

export async function createBenchBucket(client: S3Client): Promise<string> {
  const bucket = `doorito-bench-${randomBytes(4).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Delete every object under `prefix` (and abort unfinished multipart uploads). */
export async function emptyPrefix(client: S3Client, bucket: string, prefix = ''): Promise<void> {
  await s3Cleanup(client, bucket, prefix);
}

export async function deleteBenchBucket(client: S3Client, bucket: string): Promise<void> {
  await emptyPrefix(client, bucket);
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}
