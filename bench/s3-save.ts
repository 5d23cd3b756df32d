/**
 * 1. S3Storage.save of a 256 MiB generated stream vs lib-storage's Upload with the same part
 * size, queue size and client. A single streamed PutObject (unsigned payload) runs in the same
 * rounds, for the breakdown only.
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Storage } from '../src/storage/s3/index.js';
import { patternStream } from '../test/helpers/streams.js';
import { PART_SIZE, QUEUE_SIZE } from './s3-bucket.js';
import { MiB, fmt, heading, interleave, note, rate, table, type Sample } from './util.js';

export const S3_SIZE = 256 * MiB;
const CONTENT_TYPE = 'application/octet-stream';

export interface S3SaveResult {
  ours: Sample[];
  raw: Sample[];
  unsigned: Sample[];
}

export async function benchS3Save(storage: S3Storage): Promise<S3SaveResult> {
  const client = storage.client;
  const Bucket = storage.bucket;
  const remove = (Key: string) => client.send(new DeleteObjectCommand({ Bucket, Key }));
  const samples = await interleave([
    {
      name: 'ours',
      run: (tag) => storage.save(`s3-save/ours-${tag}.bin`, patternStream(S3_SIZE, 1)),
      after: (tag) => remove(`s3-save/ours-${tag}.bin`),
    },
    {
      name: 'raw',
      run: (tag) =>
        new Upload({
          client,
          params: { Bucket, Key: `s3-save/raw-${tag}.bin`, Body: patternStream(S3_SIZE, 1), ContentType: CONTENT_TYPE },
          partSize: PART_SIZE,
          queueSize: QUEUE_SIZE,
        }).done(),
      after: (tag) => remove(`s3-save/raw-${tag}.bin`),
    },
    {
      name: 'unsigned',
      // A stream body cannot be hashed up front, so SigV4 signs it as UNSIGNED-PAYLOAD.
      run: (tag) =>
        client.send(
          new PutObjectCommand({
            Bucket,
            Key: `s3-save/unsigned-${tag}.bin`,
            Body: patternStream(S3_SIZE, 1),
            ContentLength: S3_SIZE,
            ContentType: CONTENT_TYPE,
          }),
        ),
      after: (tag) => remove(`s3-save/unsigned-${tag}.bin`),
    },
  ]);
  const result = { ours: samples.get('ours') ?? [], raw: samples.get('raw') ?? [], unsigned: samples.get('unsigned') ?? [] };
  const ours = rate(result.ours, S3_SIZE / MiB);
  const raw = rate(result.raw, S3_SIZE / MiB);
  heading(1, `S3 save, 256 MiB generated stream, part 8 MiB, queue 4 (median of ${result.ours.length}, MiB/s)`);
  table(
    ['variant', 'median', 'min', 'max'],
    [
      ['S3Storage.save', fmt(ours.median), fmt(ours.min), fmt(ours.max)],
      ['raw lib-storage Upload', fmt(raw.median), fmt(raw.min), fmt(raw.max)],
    ],
  );
  note(`ratio ours/raw: ${fmt(ours.median / raw.median, 3)}x (target >= 0.95x)`);
  return result;
}
