/**
 * Runs the docs' blocks (see doc-blocks.ts for the markers): typechecks the TypeScript ones in
 * one `tsc --strict` program against the built package (its self-reference, as a user's project
 * resolves it), and executes each in a folder of its own inside the repository.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import type { BlockPlan } from './doc-blocks.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** What the app around a fragment has (`given storage, uploads, logger`). Typechecked with the blocks. */
export const GIVENS_SOURCE = `// What the app around a docs fragment has (<!-- doc-test: given … -->).
import { MemoryUploadStore, UploadService, createStorageFromEnv } from '@doorito/storage';
import type { FileSystemStorage } from '@doorito/storage/fs';
import type { S3Storage } from '@doorito/storage/s3';

/** The app's storage, from the environment the test gives the block (files in its folder, or S3). */
export const storage = (await createStorageFromEnv()) as FileSystemStorage | S3Storage;
const store = new MemoryUploadStore();
export const uploads = new UploadService({ storage, repository: store.repository, unitOfWork: store });
/** A pino-like logger. An error log ends the process with code 1: a fragment that only logs its failure still fails. */
export const logger = {
  info(fields: object, message: string): void {
    console.log(message, JSON.stringify(fields));
  },
  error(fields: object, message: string): void {
    console.error(message, fields);
    process.exit(1);
  },
};
`;

const FAST_INTERVALS = `const setIntervalAsUsual = globalThis.setInterval;
globalThis.setInterval = (handler, ms, ...args) => setIntervalAsUsual(handler, Math.min(ms ?? 0, 100), ...args);
`;

export const READY = '<<doc-test: top level done>>';
const READY_PATTERN = /<<doc-test: top level done>>/u;
const SERVE_WRAPPER = (entry: string) => `await import(${JSON.stringify(entry)});\nprocess.stdout.write(${JSON.stringify(`\n${READY}\n`)});\n`;

/** A small file for the blocks that save one (`createReadStream('report.pdf')`). */
export const REPORT_PDF = '%PDF-1.4\n% a stand-in for the report the docs save\n%%EOF\n';

export const extensionOf = (plan: BlockPlan): string => (plan.block.lang === 'ts' || plan.block.lang === 'typescript' ? 'ts' : 'mjs');

/** The block as a module: the import of what it is given, then its code. Returns the source and the lines added on top. */
export function moduleSource(plan: BlockPlan): { source: string; offset: number } {
  if (plan.given.length === 0) return { source: plan.block.code, offset: 0 };
  return { source: `import { ${plan.given.join(', ')} } from './givens.js';\n${plan.block.code}`, offset: 1 };
}

export interface TypecheckError {
  /** The block file, relative to the typecheck folder, or the path tsc printed. */
  file: string;
  line: number;
  text: string;
}

/** One tsc program over the given files, `--strict` with node's own module resolution. */
export async function typecheck(dir: string, files: string[]): Promise<{ errors: TypecheckError[]; output: string }> {
  await writeFile(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          types: ['node'],
          moduleDetection: 'force',
          skipLibCheck: false,
        },
        files,
      },
      null,
      2,
    ),
  );
  const result = await runProcess(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--pretty', 'false'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '' },
    timeoutMs: 170_000,
  });
  const output = result.stdout + result.stderr;
  const errors: TypecheckError[] = [];
  for (const line of output.split('\n')) {
    const match = /^(.+?)\((\d+),(\d+)\): (error TS\d+: .*)$/u.exec(line);
    if (match !== null) errors.push({ file: match[1]!, line: Number(match[2]), text: match[4]! });
    else if (line.startsWith(' ') && errors.length > 0) errors[errors.length - 1]!.text += `\n${line}`;
  }
  if (result.code !== 0 && errors.length === 0) errors.push({ file: '(tsc)', line: 0, text: output.trim() || `tsc exited ${String(result.code)}` });
  return { errors, output };
}

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export function runProcess(command: string, args: string[], options: { cwd: string; env: Record<string, string>; timeoutMs: number }): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

export interface ServeContext {
  port: number;
  env: Record<string, string>;
  /** Resolves when the block's output matches, rejects after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Start a long-running block, wait until its top level has run, probe it, stop it with SIGTERM. */
export async function serveProcess(
  args: string[],
  options: { cwd: string; env: Record<string, string>; port: number; probe: (context: ServeContext) => Promise<void> },
): Promise<ProcessResult & { probeError?: unknown }> {
  const child = spawn(process.execPath, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((listener) => listener());
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    notify();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let exited = false;
  void closed.then(() => {
    exited = true;
    notify();
  });
  const waitForOutput = (pattern: RegExp, timeoutMs = 60_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(stdout)) done(resolve);
        else if (exited) done(() => reject(new Error(`the block exited before printing ${String(pattern)}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no ${String(pattern)} in the block's output within ${timeoutMs} ms`))), timeoutMs);
      const done = (then: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        then();
      };
      listeners.add(check);
      check();
    });
  let probeError: unknown;
  try {
    await waitForOutput(READY_PATTERN);
    await options.probe({ port: options.port, env: options.env, waitForOutput });
  } catch (error) {
    probeError = error;
  }
  let timedOut = false;
  if (!exited) child.kill('SIGTERM');
  const kill = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, 15_000);
  const { code, signal } = await closed;
  clearTimeout(kill);
  return { code, signal, stdout, stderr, timedOut, ...(probeError === undefined ? {} : { probeError }) };
}

/** Write a run's folder: the block, what it is given, the files it reads. Returns the node arguments. */
export async function prepareRun(dir: string, plan: BlockPlan): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const entry = `block.${extensionOf(plan)}`;
  await writeFile(path.join(dir, entry), moduleSource(plan).source);
  await writeFile(path.join(dir, 'givens.ts'), GIVENS_SOURCE);
  await writeFile(path.join(dir, 'report.pdf'), REPORT_PDF);
  const args = ['--import', 'tsx'];
  if (plan.fastIntervals) {
    await writeFile(path.join(dir, 'fast-intervals.mjs'), FAST_INTERVALS);
    args.push('--import', './fast-intervals.mjs');
  }
  if (plan.serve === null) return [...args, entry];
  await writeFile(path.join(dir, 'serve.mjs'), SERVE_WRAPPER(`./${entry}`));
  return [...args, 'serve.mjs'];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function exists(dir: string, name: string): Promise<boolean> {
  return (await readdir(dir)).includes(name);
}
