/**
 * Finding and removing what unfinished saves left in a bucket: multipart uploads that were
 * never completed or aborted, and name claims (empty placeholder objects) of saves that died.
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { PendingWrite, PendingWriteQuery } from '../../types.js';
import { isS3NotFound } from './errors.js';
import { CLAIM_METADATA } from './write-protocol.js';

export interface BucketPlace {
  client: S3Client;
  bucket: string;
  /** The storage's `location/`, or ''. */
  prefix: string;
}

const before = (date: Date | undefined, limit: Date | undefined): boolean =>
  limit === undefined || (date !== undefined && date < limit);

export async function* listPendingWrites(place: BucketPlace, query: PendingWriteQuery = {}): AsyncIterable<PendingWrite> {
  const { client, bucket, prefix } = place;
  const Prefix = prefix + (query.prefix ?? '');
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  do {
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html
    const page = await client.send(
      new ListMultipartUploadsCommand({
        Bucket: bucket,
        Prefix,
        ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
        ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
      }),
    );
    for (const upload of page.Uploads ?? []) {
      if (upload.Key === undefined || upload.UploadId === undefined || !before(upload.Initiated, query.startedBefore)) continue;
      yield {
        kind: 'multipart-upload',
        key: upload.Key.slice(prefix.length),
        startedAt: upload.Initiated ?? new Date(0),
        uploadId: upload.UploadId,
      };
    }
    const more = page.IsTruncated === true && page.NextKeyMarker !== undefined;
    keyMarker = more ? page.NextKeyMarker : undefined;
    uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
  } while (keyMarker !== undefined);

  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix, ...(token === undefined ? {} : { ContinuationToken: token }) }),
    );
    for (const item of page.Contents ?? []) {
      // A claim is an empty object; only those need a HEAD to be told apart.
      if (item.Key === undefined || (item.Size ?? 0) !== 0 || !before(item.LastModified, query.startedBefore)) continue;
      if (!(await isClaim(place, item.Key))) continue;
      yield { kind: 'claim', key: item.Key.slice(prefix.length), startedAt: item.LastModified ?? new Date(0) };
    }
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
}

async function isClaim(place: BucketPlace, fullKey: string): Promise<boolean> {
  try {
    const head = await place.client.send(new HeadObjectCommand({ Bucket: place.bucket, Key: fullKey }));
    return head.Metadata?.[CLAIM_METADATA] !== undefined;
  } catch (error) {
    if (isS3NotFound(error)) return false;
    throw error;
  }
}

export async function removePendingWrite(place: BucketPlace, write: PendingWrite): Promise<void> {
  const { client, bucket, prefix } = place;
  const Key = prefix + write.key;
  try {
    if (write.kind === 'multipart-upload') {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId: write.uploadId }));
    } else if (write.kind === 'claim') {
      // Only while it is still a claim: a save may have completed onto it since it was listed.
      if (await isClaim(place, Key)) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
    }
  } catch (error) {
    if (!isS3NotFound(error)) throw error;
  }
}
