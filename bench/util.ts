/**
 * Shared bench helpers: settings, timing, interleaved rounds, medians and table printing.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MiB = 1024 * 1024;
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Measured rounds per benchmark (after one warm-up round). */
export const ROUNDS = Math.max(1, Number.parseInt(process.env['BENCH_ROUNDS'] ?? '5', 10) || 5);

export interface S3Settings {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/** S3_TEST_* from the environment, else what `scripts/s3-server.sh env` prints. */
export function s3Settings(): S3Settings {
  const env: Record<string, string | undefined> = { ...process.env };
  if (env['S3_TEST_ENDPOINT'] === undefined) {
    const printed = execFileSync('bash', [path.join(ROOT, 'scripts/s3-server.sh'), 'env'], { encoding: 'utf8' });
    for (const match of printed.matchAll(/^export (S3_TEST_\w+)=(.*)$/gmu)) env[match[1] as string] = match[2];
  }
  const need = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === '') throw new Error(`${name} is not set; run \`bash scripts/s3-server.sh start\``);
    return value;
  };
  return {
    endpoint: need('S3_TEST_ENDPOINT'),
    accessKeyId: need('S3_TEST_ACCESS_KEY_ID'),
    secretAccessKey: need('S3_TEST_SECRET_ACCESS_KEY'),
    region: env['S3_TEST_REGION'] ?? 'us-east-1',
  };
}

/** Aborted on SIGINT/SIGTERM: the bench stops before its next run and cleans up. */
export const stop = new AbortController();

export const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

/** CPU time (ms, user + system) of the local S3 server's daemons, when their pid files are readable. */
export function serverCpuMs(): number | undefined {
  const run = path.join(process.env['S3_SERVER_DIR'] ?? path.join(ROOT, '.s3-server'), 'run');
  try {
    let ticks = 0;
    for (const name of ['client.rgw.a', 'osd.0', 'mon.a']) {
      const pid = readFileSync(path.join(run, `${name}.pid`), 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    }
    return ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

export interface Sample {
  ms: number;
  /** CPU of this process (all threads). */
  cpuMs: number;
  /** CPU of the S3 server's daemons, if known. */
  serverMs: number | undefined;
}

export async function timed(run: () => Promise<unknown>): Promise<Sample> {
  const cpu = process.cpuUsage();
  const server = serverCpuMs();
  const start = performance.now();
  await run();
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const serverEnd = serverCpuMs();
  return {
    ms,
    cpuMs: (used.user + used.system) / 1000,
    serverMs: server === undefined || serverEnd === undefined ? undefined : serverEnd - server,
  };
}

export interface Variant {
  name: string;
  /** One measured run; `tag` is unique per round ("w" for the warm-up). */
  run: (tag: string) => Promise<unknown>;
  /** Untimed clean-up after each run. */
  after?: (tag: string) => Promise<unknown>;
}

/**
 * A warm-up round, then `rounds` rounds of every variant, the order rotated each round
 * (AB, BA, … or ABC, BCA, CAB, …) so that no variant always runs first.
 */
export async function interleave(variants: Variant[], rounds = ROUNDS): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  for (let round = -1; round < rounds; round += 1) {
    const shift = Math.max(0, round) % variants.length;
    for (const variant of [...variants.slice(shift), ...variants.slice(0, shift)]) {
      stop.signal.throwIfAborted();
      const tag = round < 0 ? 'w' : String(round);
      gc();
      const sample = await timed(() => variant.run(tag));
      await variant.after?.(tag);
      if (round >= 0) samples.get(variant.name)?.push(sample);
    }
  }
  return samples;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Median, min and max of a per-sample rate (units per second). */
export function rate(samples: Sample[], units: number): { median: number; min: number; max: number } {
  const rates = samples.map((s) => (units * 1000) / s.ms);
  return { median: median(rates), min: Math.min(...rates), max: Math.max(...rates) };
}

export const fmt = (value: number, digits = 1): string => value.toFixed(digits);

/** Report sections, printed in their numbered order at the end whatever order they ran in. */
const sections = new Map<number, string[]>();
let current: string[] = [];

export function heading(section: number, title: string): void {
  current = [`\n## ${section}. ${title}`];
  sections.set(section, current);
}

export function note(line: string): void {
  current.push(line);
}

export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  for (const row of [header, ...rows]) note(line(row));
}

export function printReport(): void {
  for (const section of [...sections.keys()].sort((a, b) => a - b)) console.log((sections.get(section) ?? []).join('\n'));
}
