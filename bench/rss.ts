/**
 * 5. Peak RSS of one save of 64 MiB vs 1 GiB (and 256 MiB, to show where it levels off), for
 * S3Storage and FileSystemStorage, each in a fresh child process (bench/rss-child.ts) so that
 * nothing from the other benchmarks counts.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB, ROOT, fmt, heading, note, stop, table } from './util.js';

const run = promisify(execFile);
const SIZES = [64 * MiB, 256 * MiB, 1024 * MiB];

interface ChildResult {
  base: number;
  peak: number;
  buffers: number;
  ms: number;
}

async function child(backend: 's3' | 'fs', size: number, env: Record<string, string>): Promise<ChildResult> {
  const { stdout } = await run(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', path.join(ROOT, 'bench/rss-child.ts'), backend, String(size)],
    { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 1024 * 1024, signal: stop.signal },
  );
  const last = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as ChildResult;
}

export async function benchRss(targets: { s3?: { bucket: string }; fsDir?: string }): Promise<void> {
  heading(5, 'Peak RSS of one save, fresh process each, sampled every 10 ms (MiB)');
  const rows: string[][] = [];
  const summary: string[] = [];
  const backends: Array<['s3' | 'fs', string, Record<string, string> | undefined]> = [
    ['s3', 'S3Storage.save', targets.s3 === undefined ? undefined : { BENCH_BUCKET: targets.s3.bucket }],
    ['fs', 'FileSystemStorage.save', targets.fsDir === undefined ? undefined : { BENCH_DIR: targets.fsDir }],
  ];
  for (const [backend, label, env] of backends) {
    if (env === undefined) continue;
    const peaks: number[] = [];
    for (const size of SIZES) {
      const r = await child(backend, size, env);
      peaks.push(r.peak);
      const mib = (bytes: number): string => fmt(bytes / MiB);
      rows.push([`${label} ${size / MiB} MiB`, mib(r.base), mib(r.peak), mib(r.peak - r.base), mib(r.buffers), fmt((size / MiB / r.ms) * 1000)]);
    }
    const [small = 0, middle = 0, large = 0] = peaks;
    summary.push(`${label}: peak at 1 GiB - peak at 64 MiB = ${fmt((large - small) / MiB)} MiB (1 GiB - 256 MiB: ${fmt((large - middle) / MiB)} MiB)`);
  }
  table(['save', 'RSS before', 'peak RSS', 'peak - before', 'peak Buffers', 'MiB/s'], rows);
  for (const line of summary) note(line);
}
