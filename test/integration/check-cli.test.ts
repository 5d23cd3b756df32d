/**
 * `doorito-storage check`, run as a process the way a user runs it: it passes with a
 * development setup (filesystem) and a production setup (S3 on the real server), and fails
 * with a clear message for a wrong secret, a missing bucket and a malformed value.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeS3, s3StorageVariables } from '../helpers/s3-env.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

async function check(env: Record<string, string>, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // The built command, as `npx doorito-storage` runs it.
    const { stdout, stderr } = await run(process.execPath, ['dist/bin/doorito-storage.js', 'check', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('doorito-storage check, development (filesystem)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'doorito-check-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('passes, prints the configuration and each step', async () => {
    const result = await check({ MEDIA_ROOT: path.join(dir, 'media') });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('backend: filesystem');
    expect(result.stdout).toContain('ok   write a probe file');
    expect(result.stdout).toContain('ok   read it back: the bytes match');
    expect(result.stdout).toContain('All checks passed.');
  });

  it('reads --dotenv and answers --json', async () => {
    const file = path.join(dir, '.env');
    await writeFile(file, `MEDIA_ROOT=${path.join(dir, 'from-file')}\nMEDIA_URL=/files/\n`);
    const result = await check({}, ['--dotenv', file, '--json']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { ok: boolean; config: Record<string, string>; steps: Array<{ ok: boolean }> };
    expect(report.ok).toBe(true);
    expect(report.config).toMatchObject({ backend: 'filesystem', location: path.join(dir, 'from-file'), baseUrl: '/files/' });
    expect(report.steps.every((s) => s.ok)).toBe(true);
  });

  it('fails on a malformed value, naming it and what is accepted', async () => {
    const result = await check({ STORAGE_BACKEND: 's3', AWS_STORAGE_BUCKET_NAME: 'b', AWS_QUERYSTRING_AUTH: 'sometimes' });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAIL read the configuration');
    expect(result.stdout).toContain('AWS_QUERYSTRING_AUTH is not a boolean');
    expect(result.stdout).toContain('accepted: true/false, yes/no, on/off, 1/0');
  });

  it('fails when the root is not writable', async () => {
    const file = path.join(dir, 'not-a-dir');
    await writeFile(file, 'x');
    const result = await check({ MEDIA_ROOT: path.join(file, 'media') });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAIL write a probe file/u);
  });

  it('refuses bad usage with exit code 2', async () => {
    expect((await check({}, ['--bogus'])).code).toBe(2);
  });

  it('exits 2 naming the file when --dotenv is missing, and checks nothing', async () => {
    const missing = path.join(dir, 'missing.env');
    const result = await check({ MEDIA_ROOT: path.join(dir, 'media') }, ['--dotenv', missing]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`Could not read --dotenv ${missing}: no such file`);
    expect(result.stderr).toContain('usage: doorito-storage check [--dotenv FILE] [--json]');
    expect(result.stdout).toBe('');
  });
});

describeS3('doorito-storage check, production (S3)', (env) => {
  const production = {
    NODE_ENV: 'production',
    ...s3StorageVariables(env, 'check-cli'),
  };

  it('passes: HeadBucket, put/get/delete of a probe, and a fetch of its presigned URL', async () => {
    const result = await check(production);
    expect(result.code).toBe(0);
    for (const step of ['reach the bucket', 'write a probe file', 'read it back', 'fetch its shareable URL', 'delete the probe']) {
      expect(result.stdout).toContain(`ok   ${step}`);
    }
    expect(result.stdout).toContain('HTTP 200');
    expect(result.stdout).not.toContain(env.secretAccessKey);
    // Each server's no-overwrite guarantee, as the check learnt it from the server.
    expect(result.stdout).toContain(
      env.provider === 'swift'
        ? 'ok   what the server guarantees: conditional PutObject refused (e.g. Swift, 501): HEAD-then-write'
        : 'ok   what the server guarantees: conditional PutObject honoured: no-overwrite saves are atomic',
    );
    expect(result.stdout).toContain('request checksums WHEN_REQUIRED');
  });

  it('fails for a wrong secret, saying what to check, without the secret', async () => {
    const secret = 'wrong-secret-value-123456';
    const result = await check({ ...production, AWS_SECRET_ACCESS_KEY: secret });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAIL reach the bucket');
    expect(result.stdout).toMatch(/SignatureDoesNotMatch/u);
    expect(result.stdout).toMatch(/check the secret key, the region .* and the addressing style/u);
    expect(result.stdout + result.stderr).not.toContain(secret);
  });

  it('fails for a missing bucket', async () => {
    const result = await check({ ...production, AWS_STORAGE_BUCKET_NAME: 'no-such-bucket-doorito' });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAIL reach the bucket: bucket "no-such-bucket-doorito" does not exist');
  });
});
