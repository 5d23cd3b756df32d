/**
 * 2. 500 saves of 4 KiB buffers at concurrency 16 vs raw PutObject at the same concurrency.
 * Ours sends `If-None-Match: *` by default (no-overwrite); `{ overwrite: true }` shows that
 * header's cost separately, and a raw PutObject with the same header is the like-for-like
 * baseline for the default.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Storage } from '../src/storage/s3/index.js';
import { emptyPrefix } from './s3-bucket.js';
import { fmt, heading, interleave, note, rate, table } from './util.js';

const COUNT = 500;
const CONCURRENCY = 16;
const body = Buffer.alloc(4096, 0x61);

async function pool(run: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < COUNT) await run(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

export async function benchS3Small(storage: S3Storage): Promise<void> {
  const client = storage.client;
  const Bucket = storage.bucket;
  const rawPut = (Key: string, conditional: boolean) =>
    client.send(
      new PutObjectCommand({
        Bucket,
        Key,
        Body: body,
        ContentType: 'application/octet-stream',
        ...(conditional ? { IfNoneMatch: '*' } : {}),
      }),
    );
  const after = (name: string) => (tag: string) => emptyPrefix(client, Bucket, `small/${name}-${tag}/`);
  const samples = await interleave([
    { name: 'ours', run: (tag) => pool((i) => storage.save(`small/ours-${tag}/${i}.bin`, body)), after: after('ours') },
    {
      name: 'overwrite',
      run: (tag) => pool((i) => storage.save(`small/overwrite-${tag}/${i}.bin`, body, { overwrite: true })),
      after: after('overwrite'),
    },
    { name: 'raw', run: (tag) => pool((i) => rawPut(`small/raw-${tag}/${i}.bin`, false)), after: after('raw') },
    { name: 'raw-conditional', run: (tag) => pool((i) => rawPut(`small/raw-conditional-${tag}/${i}.bin`, true)), after: after('raw-conditional') },
  ]);
  const ours = rate(samples.get('ours') ?? [], COUNT);
  const overwrite = rate(samples.get('overwrite') ?? [], COUNT);
  const raw = rate(samples.get('raw') ?? [], COUNT);
  const rawConditional = rate(samples.get('raw-conditional') ?? [], COUNT);
  const row = (label: string, r: typeof raw): string[] => [label, fmt(r.median), fmt(r.min), fmt(r.max), `${fmt(r.median / raw.median, 3)}x`];
  heading(2, `S3 small saves, ${COUNT} x 4 KiB at concurrency ${CONCURRENCY} (median of ${samples.get('ours')?.length}, ops/s)`);
  table(
    ['variant', 'median', 'min', 'max', 'vs raw'],
    [
      row('S3Storage.save (If-None-Match: *)', ours),
      row('S3Storage.save { overwrite: true }', overwrite),
      row('raw PutObjectCommand', raw),
      row('raw PutObjectCommand (If-None-Match: *)', rawConditional),
    ],
  );
  note(`conditional vs conditional: ours/raw ${fmt(ours.median / rawConditional.median, 3)}x (target >= 0.95x)`);
  note(`cost of the conditional header: ours ${fmt(ours.median / overwrite.median, 3)}x, raw ${fmt(rawConditional.median / raw.median, 3)}x`);
}
