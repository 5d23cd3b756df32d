/**
 * `node --import tsx bench/import-cost.ts`: what importing each entry costs in a fresh process
 * (wall time of the import, RSS after it, `@aws-sdk/*`/`@smithy/*` modules loaded), against two
 * baselines in the same run: an empty import (Node's floor) and the raw `@aws-sdk/client-s3`.
 * Rounds are interleaved; the median is reported. Needs `npm run build`. IMPORT_ROUNDS (default 9).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const ROUNDS = Number(process.env.IMPORT_ROUNDS ?? 9);
const SUBJECTS = [
  ['(empty: node:path)', 'node:path'],
  ['@aws-sdk/client-s3 (raw SDK)', '@aws-sdk/client-s3'],
  ['@doorito/storage', '@doorito/storage'],
  ['@doorito/storage/fs', '@doorito/storage/fs'],
  ['@doorito/storage/env', '@doorito/storage/env'],
  ['@doorito/storage/sqlite', '@doorito/storage/sqlite'],
  ['@doorito/storage/s3', '@doorito/storage/s3'],
] as const;

const PROBE = `
  import { createRequire } from 'node:module';
  const t0 = performance.now();
  await import(process.argv[1]);
  const ms = performance.now() - t0;
  const sdk = Object.keys(createRequire(import.meta.url).cache).filter((f) => /[\\\\/]node_modules[\\\\/]@(aws-sdk|smithy)[\\\\/]/.test(f)).length;
  console.log(JSON.stringify({ ms, rss: process.memoryUsage().rss, sdk }));
`;

const samples = new Map<string, Array<{ ms: number; rss: number; sdk: number }>>(SUBJECTS.map(([name]) => [name, []]));
for (let round = 0; round <= ROUNDS; round++) {
  for (const [name, spec] of SUBJECTS) {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', PROBE, spec], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    if (round > 0) samples.get(name)?.push(JSON.parse(out.toString()) as { ms: number; rss: number; sdk: number });
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const sdkMs = median((samples.get('@aws-sdk/client-s3 (raw SDK)') ?? []).map((s) => s.ms));
console.log(`# import cost, node ${process.version}, ${ROUNDS} rounds after 1 warm-up, medians`);
console.log('| entry | import ms | × raw SDK import | RSS MiB | SDK modules |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const [name] of SUBJECTS) {
  const list = samples.get(name) ?? [];
  const ms = median(list.map((s) => s.ms));
  console.log(`| ${name} | ${ms.toFixed(1)} | ${(ms / sdkMs).toFixed(2)} | ${(median(list.map((s) => s.rss)) / 2 ** 20).toFixed(1)} | ${median(list.map((s) => s.sdk))} |`);
}
