/**
 * One save in a fresh process, for bench/rss.ts: `rss-child.ts <s3|fs> <bytes>`. Prints one
 * JSON line: RSS before the save, the peak sampled every 10 ms during it, the peak of Buffer
 * (ArrayBuffer) memory, live or not yet collected, and the time taken.
 * Settings come from the environment (BENCH_BUCKET and S3_TEST_* for s3, BENCH_DIR for fs).
 */
import { FileSystemStorage } from '../src/storage/fs/index.js';
import type { Storage } from '../src/index.js';
import { patternStream } from '../test/helpers/streams.js';
import { benchStorage } from './s3-bucket.js';
import { MiB, gc, s3Settings } from './util.js';

const [backend, bytes] = process.argv.slice(2);
const size = Number(bytes);
const env = process.env;
const s3 = backend === 's3' ? benchStorage(s3Settings(), env['BENCH_BUCKET'] ?? '') : undefined;
const storage: Storage = s3 ?? new FileSystemStorage({ location: env['BENCH_DIR'] ?? '' });

// Warm code paths and connections first, so the baseline holds everything but the save's buffers.
const warm = await storage.save(`rss/warm-${process.pid}.bin`, patternStream(MiB, 2));
await storage.delete(warm.key);
gc();
await new Promise((resolve) => setTimeout(resolve, 100));

const base = process.memoryUsage.rss();
let peak = base;
let buffers = 0;
const sample = (): void => {
  const usage = process.memoryUsage();
  peak = Math.max(peak, usage.rss);
  buffers = Math.max(buffers, usage.arrayBuffers);
};
const timer = setInterval(sample, 10);
const start = performance.now();
const saved = await storage.save(`rss/${backend}-${size}-${process.pid}.bin`, patternStream(size, 3));
const ms = performance.now() - start;
clearInterval(timer);
sample();
await storage.delete(saved.key);
if (saved.size !== size) throw new Error(`saved ${saved.size} bytes, expected ${size}`);
s3?.destroy();
console.log(JSON.stringify({ base, peak, buffers, ms }));
