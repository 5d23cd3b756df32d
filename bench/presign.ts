/**
 * 3. url() presigning vs getSignedUrl() for the same keys, bucket and client. Pure CPU: no
 * request reaches the server. Each round is 5000 URLs per side, run as alternating batches of
 * 500 so that both sides see the same background load (ours is ~10x shorter per batch).
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { formatUrl } from '@aws-sdk/core/util';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { SignatureV4 } from '@smithy/signature-v4';
import type { S3Storage } from '../src/storage/s3/index.js';
import { ROUNDS, fmt, heading, interleave, note, rate, table, type Sample } from './util.js';

const BATCH = 5000;
const BATCHES = 1;
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
  // The floor: the SDK's SigV4 signer alone on a prepared request, plus formatting the URL.
  const signer = new SignatureV4({ service: 's3', region: client.config.region, credentials: client.config.credentials, sha256: client.config.sha256, uriEscapePath: false, applyChecksum: false });
  const endpoint = new URL(await storage.url('probe'));
  const unsignable = new Set(['content-type']);
  const samples = await interleave(
    [
      {
        name: 'ours',
        run: async () => {
          for (let i = 0; i < BATCH; i += 1) await storage.url(keyOf(i), { expiresIn: EXPIRES_IN });
        },
      },
      {
        name: 'floor',
        run: async () => {
          for (let i = 0; i < BATCH; i += 1) {
            const request = {
              method: 'GET',
              protocol: endpoint.protocol,
              hostname: endpoint.hostname,
              port: Number(endpoint.port),
              path: `/${Bucket}/${encodeURIComponent(keyOf(i)).replace(/%2F/g, '/')}`,
              query: { 'x-id': 'GetObject' },
              headers: { host: endpoint.host, 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' },
            };
            formatUrl((await signer.presign(request as never, { expiresIn: EXPIRES_IN, unsignableHeaders: unsignable })) as never);
          }
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
  const floor = rate(rounds(samples.get('floor') ?? []), BATCH * BATCHES);
  heading(3, `Presigned GET URLs, ${BATCH * BATCHES} per round and side, one at a time (median of ${ROUNDS}, URLs/s)`);
  const row = (label: string, r: typeof raw): string[] => [label, fmt(r.median, 0), fmt(r.min, 0), fmt(r.max, 0), fmt(1e6 / r.median, 1)];
  table(['variant', 'median', 'min', 'max', 'us/URL'], [
    row('S3Storage.url()', ours),
    row('getSignedUrl()', raw),
    row('SignatureV4.presign + formatUrl alone (floor)', floor),
  ]);
  note(`ratio ours/raw: ${fmt(ours.median / raw.median, 2)}x (target >= 10x)`);
  note(`the SDK signer alone: ${fmt(floor.median / raw.median, 2)}x of getSignedUrl; ours reaches ${fmt((ours.median / floor.median) * 100, 0)}% of that floor`);
}
