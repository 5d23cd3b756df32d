/**
 * S3Storage.deleteMany against the real servers (Ceph RGW, Swift), through the fault proxy so
 * that requests can be counted and per-key failures injected: 1,000 keys a DeleteObjects,
 * Content-MD5 on each, the storage's location honoured, transient per-key errors retried and
 * permanent ones reported, the NotImplemented fallback, and an abort midway.
 */
import { DeleteObjectsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { StorageAbortedError, StorageDeleteError, isStorageDeleteError, type DeleteFailure } from '../../src/index.js';
import type { S3Storage } from '../../src/storage/s3/index.js';
import { FaultProxy, type RequestSigner } from '../helpers/fault-proxy.js';
import { s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { describeS3, rawClient, type S3TestEnv } from '../helpers/s3-env.js';

/** Signs the requests the proxy's `delete-errors` fault rewrites, with the test server's credentials. */
function signerFor(env: S3TestEnv, sha256: ConstructorParameters<typeof SignatureV4>[0]['sha256']): RequestSigner {
  const signer = new SignatureV4({
    service: 's3',
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    sha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  return async ({ method, url, headers, body }) => {
    const parsed = new URL(url, `http://${headers.host ?? 'localhost'}`);
    const signed = await signer.sign({
      method,
      protocol: 'http:',
      hostname: parsed.hostname,
      port: Number(parsed.port),
      path: parsed.pathname,
      query: Object.fromEntries(parsed.searchParams),
      headers,
      body,
    });
    return signed.headers;
  };
}

const failureSummary = (failures: ReadonlyArray<DeleteFailure>) => failures.map((f) => ({ key: f.key, code: f.error.code }));

describeS3('S3Storage.deleteMany', (env) => {
  const client = rawClient(env);
  const sign = signerFor(env, client.config.sha256);
  let proxy: FaultProxy;
  let location: string;
  let storage: S3Storage;

  afterAll(() => client.destroy());
  beforeEach(async () => {
    proxy = await FaultProxy.start(env.endpoint);
    location = `delete-many-${randomUUID()}`;
    storage = s3StorageFor(env, { endpoint: proxy.endpoint, location });
  });
  afterEach(async () => {
    storage.destroy();
    await proxy.close();
    await s3Cleanup(client, env.bucket, location);
  });

  /** Create objects straight on the server (not through the proxy), 32 at a time. */
  const putAll = async (fullKeys: readonly string[]): Promise<void> => {
    for (let i = 0; i < fullKeys.length; i += 32) {
      await Promise.all(fullKeys.slice(i, i + 32).map((Key) => client.send(new PutObjectCommand({ Bucket: env.bucket, Key, Body: Key }))));
    }
  };
  const put = (keys: readonly string[]): Promise<void> => putAll(keys.map((key) => `${location}/${key}`));
  const left = (): Promise<string[]> => s3Leftovers(client, env.bucket, `${location}/`);
  const md5s = (): Array<string | string[] | undefined> => proxy.log.filter((e) => e.op === 'DeleteObjects').map((e) => e.headers['content-md5']);

  it('deletes 1,001 keys in 2 DeleteObjects requests, each with a Content-MD5, and nothing outside its location', async () => {
    const keys = Array.from({ length: 1001 }, (_, i) => `batch/${String(i).padStart(4, '0')}.txt`);
    // Outside the location, but starting with its name (and cleaned up with it).
    const outside = [`${location}-sibling/batch/0000.txt`, `${location}x/batch/0001.txt`];
    await Promise.all([put(keys), putAll(outside)]);

    await storage.deleteMany(keys);

    expect(await left()).toEqual([]);
    expect(proxy.count('DeleteObjects')).toBe(2);
    expect(proxy.count('DeleteObject')).toBe(0);
    // A base64 MD5 on each (Swift also checks it against the body: a wrong one is BadDigest).
    expect(md5s()).toEqual([expect.stringMatching(/^[A-Za-z0-9+/]{22}==$/u), expect.stringMatching(/^[A-Za-z0-9+/]{22}==$/u)]);
    expect(await s3Leftovers(client, env.bucket, `${location}-sibling/`)).toEqual([`object ${outside[0]}`]);
    expect(await s3Leftovers(client, env.bucket, `${location}x/`)).toEqual([`object ${outside[1]}`]);
  });

  it(`shows why Content-MD5 is sent: ${env.provider === 'swift' ? 'Swift refuses' : 'this server takes'} the SDK's CRC32-only DeleteObjects`, async () => {
    await put(['plain.txt']);
    const plain = client.send(new DeleteObjectsCommand({ Bucket: env.bucket, Delete: { Objects: [{ Key: `${location}/plain.txt` }], Quiet: true } }));
    if (env.provider === 'swift') {
      await expect(plain).rejects.toMatchObject({ name: 'InvalidRequest', message: expect.stringContaining('Content-MD5') });
      expect(await left()).toEqual([`object ${location}/plain.txt`]);
    } else {
      await expect(plain).resolves.toBeDefined();
      expect(await left()).toEqual([]);
    }
    // Ours, with Content-MD5, goes through on both (and takes what the plain one left).
    await put(['ours.txt']);
    await storage.deleteMany(['plain.txt', 'ours.txt']);
    expect(await left()).toEqual([]);
  });

  for (const code of ['InternalError', 'SlowDown', 'ServiceUnavailable']) {
    it(`retries a key the server failed with ${code} (per key, in a 200) until it is deleted`, async () => {
      const keys = ['t/a.txt', 't/b.txt', 't/c.txt'];
      await put(keys);
      const rule = proxy.inject({ op: 'DeleteObjects', fault: { kind: 'delete-errors', errors: [{ key: `${location}/t/b.txt`, code }], sign } });

      await storage.deleteMany(keys);

      expect(rule.fired).toBe(1);
      expect(proxy.count('DeleteObjects')).toBe(2);
      expect(await left()).toEqual([]);
    });
  }

  it('reports a key refused with AccessDenied in StorageDeleteError.failures, not retried; only that key is left', async () => {
    const keys = ['p/a.txt', 'p/denied.txt', 'p/c.txt', 'p/d.txt'];
    await put(keys);
    proxy.inject({ op: 'DeleteObjects', fault: { kind: 'delete-errors', errors: [{ key: `${location}/p/denied.txt`, code: 'AccessDenied' }], sign } });

    const error = await storage.deleteMany(keys).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(StorageDeleteError);
    expect(isStorageDeleteError(error)).toBe(true);
    const failures = (error as StorageDeleteError).failures;
    expect(failureSummary(failures)).toEqual([{ key: 'p/denied.txt', code: 'E_PERMISSION_DENIED' }]);
    expect(error).toMatchObject({ code: 'E_DELETE_FAILED', key: 'p/denied.txt', cause: failures[0]?.error });
    expect((error as Error).message).toContain('p/denied.txt');
    expect(proxy.count('DeleteObjects')).toBe(1);
    expect(await left()).toEqual([`object ${location}/p/denied.txt`]);
  });

  it('in one request, retries the transient key and reports the permanent one', async () => {
    const keys = ['m/a.txt', 'm/flaky.txt', 'm/denied.txt', 'm/b.txt'];
    await put(keys);
    proxy.inject({
      op: 'DeleteObjects',
      fault: {
        kind: 'delete-errors',
        errors: [
          { key: `${location}/m/flaky.txt`, code: 'InternalError' },
          { key: `${location}/m/denied.txt`, code: 'AccessDenied' },
        ],
        sign,
      },
    });

    const error = await storage.deleteMany(keys).catch((e: unknown) => e);

    expect(isStorageDeleteError(error)).toBe(true);
    expect(failureSummary((error as StorageDeleteError).failures)).toEqual([{ key: 'm/denied.txt', code: 'E_PERMISSION_DENIED' }]);
    expect(proxy.count('DeleteObjects')).toBe(2);
    expect(await left()).toEqual([`object ${location}/m/denied.txt`]);
  });

  it('falls back to one DeleteObject per key when DeleteObjects is NotImplemented, and remembers it', async () => {
    const keys = ['n/a.txt', 'n/b.txt', 'n/c.txt'];
    await put(keys);
    proxy.inject({ op: 'DeleteObjects', fault: { kind: 'status', status: 501, code: 'NotImplemented', message: 'A header you provided implies functionality that is not implemented' } });

    await storage.deleteMany([...keys, 'n/missing.txt']);
    expect(await left()).toEqual([]);
    expect(proxy.count('DeleteObjects')).toBe(1);
    expect(proxy.count('DeleteObject')).toBe(4);

    await put(['n/d.txt', 'n/e.txt']);
    await storage.deleteMany(['n/d.txt', 'n/e.txt']);
    expect(await left()).toEqual([]);
    expect(proxy.count('DeleteObjects')).toBe(1);
    expect(proxy.count('DeleteObject')).toBe(6);
  });

  it('an abort during a stalled DeleteObjects settles before the stall ends, naming every key not confirmed deleted', async () => {
    const keys = ['x/a.txt', 'x/b.txt', 'x/c.txt'];
    await put(keys);
    const stallMs = 8000;
    proxy.inject({ op: 'DeleteObjects', fault: { kind: 'stall', ms: stallMs } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const started = performance.now();

    const error = await storage.deleteMany(keys, { signal: controller.signal }).catch((e: unknown) => e);

    expect(performance.now() - started).toBeLessThan(stallMs);
    expect(isStorageDeleteError(error)).toBe(true);
    const failures = (error as StorageDeleteError).failures;
    expect(failures.map((f) => f.key)).toEqual(keys);
    for (const failure of failures) expect(failure.error).toBeInstanceOf(StorageAbortedError);
    // The stalled request was never forwarded: every object is still there.
    expect((await left()).sort()).toEqual(keys.map((key) => `object ${location}/${key}`).sort());
  });
});
