/**
 * The package as a user gets it: `npm pack`, then fresh consumers that install the tarball
 * from a folder of their own, on the Node this suite runs on.
 * - The tarball: no `prepare` script, no source maps, no file that nothing loads.
 * - A filesystem-only consumer (no AWS SDK installed), in ESM and in CJS: the core works, the
 *   `doorito-storage check` command works, and choosing S3 says which packages to install.
 * - An S3 consumer (SDK installed) saves, reads and shares a file on the real S3 server.
 * - TypeScript consumers typecheck every entry with `node16` (ESM and CJS files) and `bundler`
 *   resolution, `strict` and `skipLibCheck: false`, so our own .d.ts files are checked too.
 * It prints the install size and package count of the filesystem-only consumer.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Env, s3StorageVariables } from '../helpers/s3-env.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const manifest = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};

/** npm with the Node this suite runs on first in PATH, quiet, never the repository's own folder. */
async function npm(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd,
    env: { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

async function node(cwd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, args, { cwd, env: { PATH: process.env.PATH ?? '', NODE_NO_WARNINGS: '1', ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? await duBytes(full) : (await stat(full)).size;
  }
  return total;
}

/** Installed packages: every folder under node_modules with a package.json (scoped ones too). */
async function packageCount(modules: string): Promise<number> {
  let count = 0;
  for (const entry of await readdir(modules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    if (entry.name.startsWith('@')) count += await packageCount(path.join(modules, entry.name));
    else count += 1 + (await packageCount(path.join(modules, entry.name, 'node_modules')).catch(() => 0));
  }
  return count;
}

const pin = (name: string): string => `${name}@${(manifest.devDependencies[name] ?? manifest.peerDependencies[name] ?? 'latest').replace(/^\^/u, '')}`;

let work: string;
let tarball: string;
let tarFiles: Map<string, string>;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'doorito-consumer-'));
  // dist/ is fresh (the integration setup builds it); publishing runs the same build as `prepack`.
  const packed = JSON.parse(await npm(ROOT, ['pack', '--json', '--ignore-scripts', '--pack-destination', work])) as Array<{ filename: string }>;
  tarball = path.join(work, packed[0]?.filename ?? '');
  const unpacked = path.join(work, 'unpacked');
  await mkdir(unpacked);
  await run('tar', ['-xzf', tarball, '-C', unpacked]);
  tarFiles = new Map();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else tarFiles.set(path.relative(path.join(unpacked, 'package'), full), await readFile(full, 'utf8'));
    }
  };
  await walk(unpacked);
  const size = (await stat(tarball)).size;
  console.log(`[package] tarball ${path.basename(tarball)}: ${tarFiles.size} files, ${(size / 1024).toFixed(1)} kB packed`);
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('[package] the tarball', () => {
  it('publishes no prepare script, no source maps and no dead file', () => {
    const published = JSON.parse(tarFiles.get('package.json') ?? '{}') as { scripts?: Record<string, string>; exports: Record<string, unknown>; bin: Record<string, string> };
    expect(published.scripts?.['prepare']).toBeUndefined();
    const files = [...tarFiles.keys()];
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    // Every dist file is reachable from an export or the bin, through static and dynamic imports.
    const roots = new Set<string>([...JSON.stringify(published.exports).matchAll(/"\.\/(dist\/[^"]+)"/gu)].map((m) => m[1] as string));
    for (const bin of Object.values(published.bin)) roots.add(bin.replace(/^\.\//u, ''));
    const reached = new Set<string>();
    const visit = (file: string): void => {
      if (reached.has(file)) return;
      reached.add(file);
      const text = tarFiles.get(file);
      expect(text, `${file} is referenced but not in the tarball`).toBeDefined();
      for (const m of (text ?? '').matchAll(/(?:from\s*|import\s*\(?\s*|require\(\s*)["'](\.{1,2}\/[^"']+)["']/gu)) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1] as string));
        // A declaration file's './x.js' is './x.d.ts' (and '.cjs' is '.d.cts').
        visit(/\.d\.c?ts$/u.test(file) ? target.replace(/\.js$/u, '.d.ts').replace(/\.cjs$/u, '.d.cts') : target);
      }
    };
    for (const file of roots) visit(file);
    const dead = files.filter((f) => f.startsWith('dist/') && !reached.has(f));
    expect(dead).toEqual([]);
  });

  it('ships what the README and the licence need, and nothing from the repository besides', () => {
    const outside = [...tarFiles.keys()].filter((f) => !f.startsWith('dist/'));
    expect(outside.sort()).toEqual(['CHANGELOG.md', 'LICENSE', 'README.md', 'package.json']);
  });
});

describe('[package] a filesystem-only consumer, without the AWS SDK', () => {
  let app: string;
  beforeAll(async () => {
    app = path.join(work, 'fs-only');
    await mkdir(app);
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'fs-only', private: true, type: 'module' }));
    await npm(app, ['install', tarball]);
    const modules = path.join(app, 'node_modules');
    console.log(`[package] filesystem-only consumer on Node ${process.version}: ${await packageCount(modules)} packages, ${((await duBytes(modules)) / 2 ** 20).toFixed(2)} MiB in node_modules`);
  });

  it('installs no AWS SDK package', async () => {
    const entries = await readdir(path.join(app, 'node_modules'));
    expect(entries.filter((e) => e === '@aws-sdk' || e === '@smithy')).toEqual([]);
  });

  const program = (kind: 'esm' | 'cjs'): string => {
    const load = (spec: string) => (kind === 'esm' ? `await import('${spec}')` : `require('${spec}')`);
    const body = `
      const root = ${load('@doorito/storage')};
      const { FileSystemStorage } = ${load('@doorito/storage/fs')};
      const storage = await root.createStorageFromEnv({ MEDIA_ROOT: './media-${kind}', MEDIA_URL: '/media/' });
      const saved = await storage.save('notes/a.txt', 'hello from ${kind}');
      const text = await new Response(await storage.open(saved.key)).text();
      const s3 = await root.createStorageFromEnv({ STORAGE_BACKEND: 's3', AWS_STORAGE_BUCKET_NAME: 'b' }).then(() => undefined, (e) => e);
      const direct = await import('@doorito/storage/s3').then(() => undefined, (e) => e);
      console.log(JSON.stringify({
        fsInstance: storage instanceof FileSystemStorage, text, url: await storage.url(saved.key),
        s3: { name: s3?.name, code: s3?.code, packages: s3?.packages, fix: s3?.fix, isStorageError: root.isStorageError(s3), message: s3?.message },
        direct: direct?.message,
      }));`;
    return kind === 'esm' ? body : `(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });`;
  };

  it.each(['esm', 'cjs'] as const)('works in %s; S3 says which packages to install', async (kind) => {
    const file = path.join(app, kind === 'esm' ? 'main.mjs' : 'main.cjs');
    await writeFile(file, program(kind));
    const result = await node(app, [file]);
    expect(result.stderr).toBe('');
    const out = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      fsInstance: true,
      text: `hello from ${kind}`,
      url: '/media/notes/a.txt',
      s3: {
        name: 'StorageDependencyError',
        code: 'E_DEPENDENCY',
        packages: ['@aws-sdk/client-s3', '@aws-sdk/s3-request-presigner'],
        fix: 'npm install @aws-sdk/client-s3 @aws-sdk/s3-request-presigner',
        isStorageError: true,
      },
    });
    expect(out['direct']).toContain("'@aws-sdk/client-s3'");
  });

  it('runs `doorito-storage check` on the filesystem', async () => {
    const result = await node(app, [path.join(app, 'node_modules', '@doorito', 'storage', 'dist', 'bin', 'doorito-storage.js'), 'check'], { MEDIA_ROOT: path.join(app, 'media-check') });
    expect(result.stdout).toContain('All checks passed.');
    expect(result.code).toBe(0);
    const bin = await readFile(path.join(app, 'node_modules', '.bin', 'doorito-storage'), 'utf8');
    expect(bin.startsWith('#!/usr/bin/env node')).toBe(true);
  });
});

describe('[package] an S3 and TypeScript consumer', () => {
  let app: string;
  beforeAll(async () => {
    app = path.join(work, 'typed');
    await mkdir(app);
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'typed', private: true, type: 'module' }));
    // Types only for better-sqlite3 and pg: no native build needed to typecheck.
    await npm(app, [
      'install',
      '--ignore-scripts',
      tarball,
      pin('@aws-sdk/client-s3'),
      pin('@aws-sdk/s3-request-presigner'),
      pin('@types/node'),
      pin('@types/better-sqlite3'),
      pin('typescript'),
    ]);
  });

  it('saves, reads and shares a file on the real S3 server, from the environment', async (context) => {
    const env = s3Env();
    if (env === null) {
      context.skip();
      return;
    }
    const file = path.join(app, 's3.mjs');
    await writeFile(
      file,
      `import { createStorageFromEnv } from '@doorito/storage';
       const storage = await createStorageFromEnv();
       const { key } = await storage.save('consumer/' + process.pid + '.txt', 'from a consumer');
       const url = await storage.url(key);
       const fetched = await (await fetch(url)).text();
       await storage.delete(key);
       console.log(JSON.stringify({ backend: storage.constructor.name, fetched, exists: await storage.exists(key) }));`,
    );
    const result = await node(app, [file], s3StorageVariables(env));
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ backend: 'S3Storage', fetched: 'from a consumer', exists: false });
  });

  const ENTRIES = ['@doorito/storage', '@doorito/storage/fs', '@doorito/storage/s3', '@doorito/storage/env', '@doorito/storage/outbox', '@doorito/storage/postgres', '@doorito/storage/sqlite'];
  const esmSource = `
    import { createStorageFromEnv, isStorageError, type Storage } from '@doorito/storage';
    import { FileSystemStorage } from '@doorito/storage/fs';
    import { S3Storage } from '@doorito/storage/s3';
    import { loadStorageConfig } from '@doorito/storage/env';
    import { OutboxRelay } from '@doorito/storage/outbox';
    import { PostgresUploadStore } from '@doorito/storage/postgres';
    import { SqliteUploadStore } from '@doorito/storage/sqlite';
    const storage: Storage = await createStorageFromEnv();
    const fsStorage: Storage = new FileSystemStorage({ location: './media' });
    const s3: Storage = new S3Storage({ bucket: 'b', region: 'us-east-1' });
    export const used = [storage, fsStorage, s3, isStorageError, loadStorageConfig({}).backend satisfies 'filesystem' | 's3', OutboxRelay, PostgresUploadStore, SqliteUploadStore];
  `;
  const cjsSource = `
    import root = require('@doorito/storage');
    import fs = require('@doorito/storage/fs');
    import s3 = require('@doorito/storage/s3');
    const pending: Promise<root.Storage> = root.createStorageFromEnv();
    export const used = [pending, new fs.FileSystemStorage({ location: './media' }), s3.S3Storage];
  `;

  it.each([
    ['node16', { module: 'node16', moduleResolution: 'node16' }],
    ['bundler', { module: 'esnext', moduleResolution: 'bundler' }],
  ] as const)('typechecks every entry with %s resolution', async (name, options) => {
    await writeFile(path.join(app, 'esm.mts'), esmSource);
    await writeFile(path.join(app, 'cjs.cts'), cjsSource);
    const files = name === 'node16' ? ['esm.mts', 'cjs.cts'] : ['esm.mts'];
    const config = `tsconfig.${name}.json`;
    await writeFile(
      path.join(app, config),
      JSON.stringify({ compilerOptions: { ...options, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files }),
    );
    const result = await node(app, [path.join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config]);
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(ENTRIES.every((entry) => esmSource.includes(`'${entry}'`))).toBe(true);
  });
});
