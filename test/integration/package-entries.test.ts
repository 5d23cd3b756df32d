/**
 * The AWS SDK is an optional peer: only `@doorito/storage/s3`, and an S3 storage built from the
 * environment, load it. Each entry is imported by its package name in a fresh process (ESM and
 * CJS), and the `@aws-sdk/*` and `@smithy/*` modules it loaded are counted. The SDK ships CJS
 * to Node, so an ESM import of it lands in the CJS module cache too.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

const COUNT = `
  const loaded = Object.keys(require.cache).filter((file) => /[\\\\/]node_modules[\\\\/]@(aws-sdk|smithy)[\\\\/]/.test(file));
  console.log(JSON.stringify({ sdkModules: loaded.length }));
`;

async function sdkModules(kind: 'esm' | 'cjs', body: string): Promise<number> {
  const source =
    kind === 'esm'
      ? `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); ${body}; ${COUNT}`
      : `(async () => { ${body}; ${COUNT} })().catch((error) => { console.error(error); process.exit(1); });`;
  const { stdout } = await run(process.execPath, [...(kind === 'esm' ? ['--input-type=module'] : []), '-e', source], {
    cwd: ROOT,
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  return (JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { sdkModules: number }).sdkModules;
}

const importOf = (kind: 'esm' | 'cjs', spec: string): string =>
  kind === 'esm' ? `const mod = await import(${JSON.stringify(spec)})` : `const mod = require(${JSON.stringify(spec)})`;

const SDK_FREE = ['@doorito/storage', '@doorito/storage/fs', '@doorito/storage/env', '@doorito/storage/outbox', '@doorito/storage/postgres', '@doorito/storage/sqlite'];

describe.each(['esm', 'cjs'] as const)('which entries load the AWS SDK (%s)', (kind) => {
  it.each(SDK_FREE)('%s loads no SDK module', async (spec) => {
    expect(await sdkModules(kind, importOf(kind, spec))).toBe(0);
  });

  it('@doorito/storage/s3 does (the count sees them)', async () => {
    expect(await sdkModules(kind, importOf(kind, '@doorito/storage/s3'))).toBeGreaterThan(10);
  });

  it('createStorageFromEnv() loads the SDK only when it chooses S3', async () => {
    const build = (env: Record<string, string>): string =>
      `${importOf(kind, '@doorito/storage')}; const storage = await mod.createStorageFromEnv(${JSON.stringify(env)}); if (!storage) throw new Error('no storage')`;
    expect(await sdkModules(kind, build({ MEDIA_ROOT: path.join(ROOT, 'media') }))).toBe(0);
    const s3 = { STORAGE_BACKEND: 's3', AWS_STORAGE_BUCKET_NAME: 'b', AWS_S3_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' };
    expect(await sdkModules(kind, build(s3))).toBeGreaterThan(10);
  });
});
