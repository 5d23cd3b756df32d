/**
 * 3. url() presigning vs getSignedUrl() for the same keys, bucket and client. Pure CPU: no
 * request reaches the server. Each round is 5000 URLs per side, run as alternating batches of
 * 500 so that both sides see the same background load (ours is ~10x shorter per batch).
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { S3Storage } from '../src/storage/s3/index.js';
import { ROUNDS, fmt, heading, interleave, note, rate, table, type Sample } from './util.js';

const BATCH = 500;
const BATCHES = 10;
const EXPIRES_IN = 3600;
const keyOf = (index: number): string => `photos/2026/${index}/holiday photo.jpg`;

/** Sum consecutive batches into rounds of BATCHES. */
const rounds = (batches: Sample[]): Sample[] =>
  Array.from({ length: Math.floor(batches.length / BATCHES) }, (_, r) => {
    const group = batches.slice(r * BATCHES, (r + 1) * BATCHES);
    return { ms: group.reduce((sum, s) => sum + s.ms, 0), cpuMs: group.reduce((sum, s) => sum + s.cpuMs, 0), serverMs: undefined };
  });

export async function benchPresign(storage: S3Storage): Promise<void> {
  const client = storage.client;
  const Bucket = storage.bucket;
  const samples = await interleave(
    [
      {
        name: 'ours',
        run: async () => {
          for (let i = 0; i < BATCH; i += 1) await storage.url(keyOf(i), { expiresIn: EXPIRES_IN });
        },
      },
      {
        name: 'raw',
        run: async () => {
          for (let i = 0; i < BATCH; i += 1) await getSignedUrl(client, new GetObjectCommand({ Bucket, Key: keyOf(i) }), { expiresIn: EXPIRES_IN });
        },
      },
    ],
    ROUNDS * BATCHES,
  );
  const ours = rate(rounds(samples.get('ours') ?? []), BATCH * BATCHES);
  const raw = rate(rounds(samples.get('raw') ?? []), BATCH * BATCHES);
  heading(3, `Presigned GET URLs, ${BATCH * BATCHES} per round and side, one at a time (median of ${ROUNDS}, URLs/s)`);
  const row = (label: string, r: typeof raw): string[] => [label, fmt(r.median, 0), fmt(r.min, 0), fmt(r.max, 0), fmt(1e6 / r.median, 1)];
  table(['variant', 'median', 'min', 'max', 'us/URL'], [row('S3Storage.url()', ours), row('getSignedUrl()', raw)]);
  note(`ratio ours/raw: ${fmt(ours.median / raw.median, 2)}x (target >= 10x)`);
}
