/**
 * Memory stays flat as files grow: a 512 MiB generated stream is saved without its bytes
 * ever being held whole, and with about the memory a 128 MiB one takes. We assert on RSS growth (sampled while the save runs), never on time.
 * Each test file runs in its own process (pool: forks), so only this file's work is measured.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Storage } from '../../src/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { s3Cleanup, s3StorageFor } from '../helpers/s3-fixture.js';
import { describeS3, rawClient } from '../helpers/s3-env.js';
import { patternStream } from '../helpers/streams.js';

const MiB = 1024 * 1024;

/** Peak RSS growth (bytes) above the level before `run`, sampled every 10 ms. */
async function peakRssGrowth(run: () => Promise<unknown>): Promise<number> {
  globalThis.gc?.();
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  try {
    await run();
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, process.memoryUsage.rss());
  return peak - base;
}

async function expectFlat(storage: Storage, prefix: string, bound: number): Promise<void> {
  // Warm up code paths and pools, so the measured runs see only per-byte cost.
  await storage.save(`${prefix}/warm.bin`, patternStream(64 * MiB));
  // The reference is large enough to see what garbage collection lets pile up between its runs
  // (on Swift, 32 MiB grew RSS 0–25 MiB, 256 MiB 73–96 and 1 GiB 84: bounded, but past a
  // 32 MiB reference + 96 MiB by chance); 4× the bytes must then cost about the same.
  const small = await peakRssGrowth(() => storage.save(`${prefix}/small.bin`, patternStream(128 * MiB)));
  const large = await peakRssGrowth(() => storage.save(`${prefix}/large.bin`, patternStream(512 * MiB)));
  console.info(`${prefix}: peak RSS growth ${(small / MiB).toFixed(1)} MiB for 128 MiB, ${(large / MiB).toFixed(1)} MiB for 512 MiB`);
  expect((await storage.stat(`${prefix}/large.bin`)).size).toBe(512 * MiB);
  // Holding the file whole would add 512 MiB; a streaming save stays within its buffers.
  expect(large).toBeLessThan(bound);
  // 4× the bytes may not cost 4× the memory: growth must not scale with the size.
  expect(large).toBeLessThan(small + 64 * MiB);
}

describe('FileSystemStorage memory', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('saves a 512 MiB stream with flat memory', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'doorito-rss-'));
    await expectFlat(new FileSystemStorage({ location: dir }), 'rss', 64 * MiB);
    expect((await stat(path.join(dir, 'rss/large.bin'))).size).toBe(512 * MiB);
  });
});

describeS3('S3Storage memory', (env) => {
  const client = rawClient(env);
  const location = `rss-${randomUUID()}`;
  afterAll(async () => {
    await s3Cleanup(client, env.bucket, `${location}/`);
    client.destroy();
  });

  it('saves a 512 MiB stream with flat memory (8 MiB parts, queue 4)', async () => {
    const storage = s3StorageFor(env, { location, partSize: 8 * MiB, queueSize: 4 });
    // S3Storage holds up to queueSize + 1 parts (4 in flight, 1 read ahead): about 40 MiB, whatever the file size.
    await expectFlat(storage, 'rss', 160 * MiB);
    storage.destroy();
  });
});
