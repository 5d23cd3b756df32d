/**
 * `npm run bench [-- names…]`: every benchmark (or only the named ones: s3-save, s3-small,
 * presign, fs, rss, relay, memory-store, portal-load, direct-upload, cleanup; s3-save includes
 * the breakdown) against the local S3 server, each ours vs a baseline measured in this same run.
 * Needs `bash scripts/s3-server.sh start`. BENCH_ROUNDS sets the measured rounds (default 5).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { measureLocalSteps, reportBreakdown } from './breakdown.js';
import { benchCleanup } from './cleanup.js';
import { benchDirectUpload } from './direct-upload.js';
import { benchFsSave } from './fs-save.js';
import { benchMemoryStore } from './memory-store.js';
import { benchPresign } from './presign.js';
import { benchRelay } from './relay.js';
import { benchPortalLoad } from './portal-load.js';
import { benchRss } from './rss.js';
import { adminClient, benchStorage, createBenchBucket, deleteBenchBucket } from './s3-bucket.js';
import { benchS3Save } from './s3-save.js';
import { benchS3Small } from './s3-small.js';
import { ROOT, ROUNDS, printReport, s3Settings, stop } from './util.js';

const ALL = ['presign', 'fs', 's3-save', 's3-small', 'rss', 'relay', 'memory-store', 'portal-load', 'direct-upload', 'cleanup'];
const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL;
const unknown = wanted.filter((name) => !ALL.includes(name));
if (unknown.length > 0) throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; pick from ${ALL.join(', ')}`);

const settings = s3Settings();
const admin = adminClient(settings);
const started = performance.now();
console.log(`# @doorito/storage bench: ${new Date().toISOString()}`);
console.log(`node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${os.platform()} ${os.release()}`);
console.log(`S3 ${settings.endpoint} (region ${settings.region}); ${ROUNDS} measured rounds after 1 warm-up, interleaved`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stop.signal.aborted) process.exit(130);
    console.error(`\n${signal}: stopping after the current run, then removing the bench bucket and temp files`);
    stop.abort(new Error(`stopped by ${signal}`));
  });
}

let bucket: string | undefined;
let dir: string | undefined;
// The relay, memory-store and import-cost benchmarks need no S3 server: make the bucket only for those that do.
const needsS3 = wanted.some((name) => ['presign', 's3-save', 's3-small', 'rss', 'portal-load', 'direct-upload'].includes(name));
try {
  if (needsS3) {
    bucket = await createBenchBucket(admin).catch((error: unknown) => {
      throw new Error(`cannot reach the S3 server at ${settings.endpoint}; start it with \`bash scripts/s3-server.sh start\``, { cause: error });
    });
  }
  dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-bench-'));
  const storage = benchStorage(settings, bucket ?? 'doorito-bench-unused');
  // Server-free benchmarks first, while the server is idle (RGW's garbage collection of the
  // objects the S3 benchmarks delete would otherwise compete for the two cores).
  const step = (name: string): boolean => {
    if (!wanted.includes(name)) return false;
    console.error(`running ${name}…`);
    return true;
  };
  if (step('presign')) await benchPresign(storage);
  if (step('fs')) await benchFsSave(dir);
  if (step('memory-store')) await benchMemoryStore();
  if (step('s3-save')) {
    const local = await measureLocalSteps();
    reportBreakdown(local, await benchS3Save(storage));
  }
  if (step('s3-small')) await benchS3Small(storage);
  if (step('rss')) await benchRss({ s3: { bucket: bucket ?? '' }, fsDir: dir });
  if (step('relay')) await benchRelay();
  if (step('portal-load')) {
    // The portal runs the built package, as a user's app would.
    execFileSync(process.execPath, [path.join(ROOT, 'scripts/build-if-stale.mjs')], { stdio: 'inherit' });
    await benchPortalLoad(settings, bucket ?? '');
  }
  if (step('direct-upload')) {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts/build-if-stale.mjs')], { stdio: 'inherit' });
    await benchDirectUpload(settings, storage);
  }
  // Last: it deletes thousands of objects, whose garbage collection keeps the S3 server busy for a while.
  if (step('cleanup')) await benchCleanup(settings);
  storage.destroy();
} catch (error) {
  if (!stop.signal.aborted) throw error;
  console.error(String(stop.signal.reason));
  process.exitCode = 130;
} finally {
  printReport();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  if (bucket !== undefined) await deleteBenchBucket(admin, bucket);
  admin.destroy();
}
console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
