/**
 * The example portal as a user runs it: `node examples/express/server.mjs` in its own process
 * (so its memory is its own), on a free port, with its own media and data directories.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface Portal {
  url: string;
  dir: string;
  mediaRoot: string;
  child: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  logs: () => string;
  /** Peak resident memory of the portal process (VmHWM), in bytes. */
  peakRss: () => Promise<number>;
  /** Bytes the portal process has read through read() calls so far (`rchar`: sockets and files). */
  bytesRead: () => Promise<number>;
  stop: () => Promise<void>;
}

/** Variables of the parent that must not leak into the portal's configuration. */
const SCRUB = /^(AWS_|DATABASE_|STORAGE_BACKEND$|MEDIA_|FILE_UPLOAD_|WEBHOOK_|SQLITE_|PUBLIC_URL$|PORT$|HOST$)/u;

export interface StartOptions {
  /** Runs once the portal's directory exists, before the process starts (e.g. to break its media root). */
  prepare?: (paths: { dir: string; mediaRoot: string }) => Promise<void>;
}

export async function startPortal(env: Record<string, string> = {}, options: StartOptions = {}): Promise<Portal> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-portal-'));
  const mediaRoot = path.join(dir, 'media');
  await options.prepare?.({ dir, mediaRoot });
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !SCRUB.test(key)));
  const child = spawn(process.execPath, ['examples/express/server.mjs'], {
    cwd: root,
    env: {
      ...clean,
      NODE_ENV: 'development',
      PORT: '0',
      HOST: '127.0.0.1',
      MEDIA_ROOT: mediaRoot,
      SQLITE_PATH: path.join(dir, 'data', 'portal.sqlite3'),
      RELAY_POLL_INTERVAL_MS: '500',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the portal did not start in 60 s:\n${output}`)), 60_000);
    const onData = () => {
      const match = /listening on \S+ \(port (\d+)\)/u.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${match[1]}`);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the portal exited with ${String(code)} before listening:\n${output}`));
    });
  });

  return {
    url,
    dir,
    mediaRoot,
    child,
    logs: () => output,
    peakRss: async () => {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const kb = /VmHWM:\s+(\d+) kB/u.exec(status)?.[1];
      return Number(kb) * 1024;
    },
    bytesRead: async () => Number(/rchar:\s+(\d+)/u.exec(await readFile(`/proc/${child.pid}/io`, 'utf8'))?.[1]),
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request whose path goes out exactly as written (fetch would normalize `..`). */
export function rawRequest(url: string, options: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer }): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method: options.method ?? 'GET', path: options.path, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A multipart/form-data body written by hand, so that hostile filenames go out byte for byte. */
export function multipart(parts: Array<{ name: string; filename?: string; type?: string; content: Buffer | string }>): { body: Buffer; contentType: string } {
  const boundary = `----doorito${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
    const head = `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${part.type === undefined ? '' : `Content-Type: ${part.type}\r\n`}\r\n`;
    chunks.push(Buffer.from(head, 'utf8'), Buffer.from(part.content), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}
