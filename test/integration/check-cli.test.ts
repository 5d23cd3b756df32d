/**
 * `doorito-storage check`, run as a process the way a user runs it: it passes with a
 * development setup (filesystem) and a production setup (S3 on the real server), and fails
 * with a clear message for a wrong secret, a missing bucket and a malformed value. With
 * `--origin`, it tells whether the bucket's CORS lets a browser on that origin upload directly.
 */
import { CreateBucketCommand, DeleteBucketCommand, DeleteBucketCorsCommand, PutBucketCorsCommand, type CORSRule } from '@aws-sdk/client-s3';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeS3, rawClient, s3StorageVariables } from '../helpers/s3-env.js';
import { s3Cleanup } from '../helpers/s3-fixture.js';

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

  it('exits 2 for an --origin that is not an origin, and checks nothing', async () => {
    const result = await check({ MEDIA_ROOT: path.join(dir, 'media') }, ['--origin', 'https://app.example.com/upload']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--origin "https://app.example.com/upload" is not an origin like https://app.example.com');
    expect(result.stdout).toBe('');
  });

  it('skips --origin with local files: the app answers its own upload route', async () => {
    const result = await check({ MEDIA_ROOT: path.join(dir, 'media') }, ['--origin', 'https://app.example.com']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("ok   CORS for direct uploads from https://app.example.com: skipped: with local files, direct uploads go to your app's own upload route");
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

describeS3('doorito-storage check --origin, bucket CORS for direct uploads', (env) => {
  const ALLOWED = 'http://127.0.0.1:5555';
  const OTHER = 'http://other.example:6666';
  const RULE: CORSRule = { AllowedOrigins: [ALLOWED], AllowedMethods: ['PUT', 'GET', 'HEAD', 'POST'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag'], MaxAgeSeconds: 600 };
  const client = rawClient(env);
  // A bucket of its own: its CORS rules are this suite's to set, and the run's shared bucket keeps none.
  const bucket = `check-cors-${randomBytes(4).toString('hex')}`;
  const production = { NODE_ENV: 'production', ...s3StorageVariables({ ...env, bucket }, 'check-cli') };
  const swift = env.provider === 'swift';
  type Step = { name: string; ok: boolean; status: string; detail: string };
  const corsStep = (stdout: string, origin: string): Step | undefined =>
    (JSON.parse(stdout) as { steps: Step[] }).steps.find((s) => s.name === `CORS for direct uploads from ${origin}`);
  // https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketCors.html
  const putRules = (rules: CORSRule[]) => client.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: rules } }));
  // Swift's s3api answers every ?cors request 501 NotImplemented.
  const notImplemented = { name: 'NotImplemented', $metadata: expect.objectContaining({ httpStatusCode: 501 }) };
  const unsupported = (origin: string): string =>
    `UNSUPPORTED CORS for direct uploads from ${origin}: the server does not implement bucket CORS (GetBucketCors: HTTP 501 NotImplemented)`;

  beforeAll(async () => {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => {
    await s3Cleanup(client, bucket, '');
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    client.destroy();
  });

  it('without a rule: Ceph refuses the preflight (no CORS configuration), Swift has no bucket CORS at all', async () => {
    if (swift) await expect(client.send(new DeleteBucketCorsCommand({ Bucket: bucket }))).rejects.toMatchObject(notImplemented);
    else await client.send(new DeleteBucketCorsCommand({ Bucket: bucket }));
    const result = await check(production, ['--origin', ALLOWED]);
    expect(result.code).toBe(1);
    if (swift) {
      expect(result.stdout).toContain(unsupported(ALLOWED));
      expect(result.stdout).toContain('answered HTTP 403 SignatureDoesNotMatch, no Access-Control-Allow-Origin');
      expect(result.stdout).toContain("s3api's cors_preflight_allow_origin");
      expect(result.stdout).toContain('The server does not support what some checks ask for');
    } else {
      expect(result.stdout).toContain(`FAIL CORS for direct uploads from ${ALLOWED}: refused: the preflight OPTIONS ${env.endpoint}/${bucket}/check-cli/doorito-check/cors-probe`);
      expect(result.stdout).toContain('HTTP 403 AccessDenied, no Access-Control-Allow-Origin; the bucket has no CORS configuration');
    }
    expect(result.stdout).toContain('ok   delete the probe');
  });

  it('with the direct-upload rule: allowed for its origin (exit 0), refused for another (exit 1); on Swift, not supported', async () => {
    if (swift) await expect(putRules([RULE])).rejects.toMatchObject(notImplemented);
    else await putRules([RULE]);
    const allowed = await check(production, ['--origin', ALLOWED]);
    const other = await check(production, ['--origin', OTHER]);
    expect(other.code).toBe(1);
    if (swift) {
      expect(allowed.code).toBe(1);
      expect(allowed.stdout).toContain(unsupported(ALLOWED));
      expect(other.stdout).toContain(unsupported(OTHER));
    } else {
      expect(allowed.code).toBe(0);
      expect(allowed.stdout).toContain(`ok   CORS for direct uploads from ${ALLOWED}: allowed: the preflight OPTIONS ${env.endpoint}/${bucket}/check-cli/doorito-check/cors-probe answered HTTP 200`);
      expect(allowed.stdout).toContain(`bucket CORS rule 1 of 1 matches (AllowedOrigins ["${ALLOWED}"]); ETag is exposed`);
      expect(allowed.stdout).toContain('All checks passed.');
      expect(other.stdout).toContain(`FAIL CORS for direct uploads from ${OTHER}: refused:`);
      expect(other.stdout).toContain(`none of the bucket's 1 CORS rule(s) allows PUT from ${OTHER}`);
    }
    for (const result of [allowed, other]) expect(result.stdout + result.stderr).not.toContain(env.secretAccessKey);
  });

  it('--json, two origins comma-separated: a rule without ExposeHeaders ETag is a warning, not a failure', async () => {
    const withoutEtag: CORSRule = { AllowedOrigins: RULE.AllowedOrigins, AllowedMethods: RULE.AllowedMethods, AllowedHeaders: ['*'], MaxAgeSeconds: 600 };
    if (swift) await expect(putRules([withoutEtag])).rejects.toMatchObject(notImplemented);
    else await putRules([withoutEtag]);
    const result = await check(production, ['--json', '--origin', `${ALLOWED},${OTHER}`]);
    expect(result.code).toBe(1);
    const [allowed, other] = [corsStep(result.stdout, ALLOWED), corsStep(result.stdout, OTHER)];
    if (swift) {
      expect(allowed).toMatchObject({ ok: false, status: 'unsupported' });
      expect(other).toMatchObject({ ok: false, status: 'unsupported' });
    } else {
      expect(allowed).toMatchObject({ ok: true, status: 'warn' });
      expect(allowed?.detail).toContain('ETag is not exposed (ExposeHeaders lacks "ETag"): single PUTs work, but a multipart upload (Uppy) cannot read its part ETags');
      expect(other).toMatchObject({ ok: false, status: 'fail' });
    }
  });
});
