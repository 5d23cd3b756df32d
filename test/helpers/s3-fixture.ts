import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { S3Storage, type S3StorageClientOptions } from '../../src/storage/s3/index.js';
import type { S3TestEnv } from './s3-client.js';

export const PART = 5 * 1024 * 1024;

/** Objects and unfinished multipart uploads under `prefix`. */
export async function s3Leftovers(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return [
    ...(objects.Contents ?? []).map((o) => `object ${o.Key}`),
    ...(uploads.Uploads ?? []).map((u) => `multipart upload ${u.Key} ${u.UploadId}`),
  ];
}

export async function s3Cleanup(client: S3Client, bucket: string, prefix: string): Promise<void> {
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  for (const u of uploads.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  }
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (page.Contents ?? []).map((o) => o.Key);
    if (keys.length === 0) return;
    // One DeleteObject each: Swift refuses DeleteObjects without Content-MD5, which the SDK no longer sends.
    for (let i = 0; i < keys.length; i += 32) {
      await Promise.all(keys.slice(i, i + 32).map((Key) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key }))));
    }
  }
}

export function s3StorageFor(env: S3TestEnv, options: Partial<S3StorageClientOptions> = {}): S3Storage {
  return new S3Storage({
    bucket: env.bucket,
    endpoint: env.endpoint,
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    partSize: PART,
    ...options,
  });
}

