/**
 * S3Storage behaviour beyond the shared contract, against the real S3 server of this run.
 */
import { CreateMultipartUploadCommand, PutObjectCommand, AbortMultipartUploadCommand } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { ObjectNotFoundError, StorageConfigError } from '../../src/index.js';
import { S3Storage } from '../../src/storage/s3/index.js';
import { s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { describeS3, rawClient } from '../helpers/s3-env.js';
import { patternStream, sha256 } from '../helpers/streams.js';

describeS3('S3Storage against a real server', (env) => {
  const client = rawClient(env);
  let location: string;
  let storage: S3Storage;
  beforeEach(() => {
    location = `extra-${randomUUID()}`;
    storage = s3StorageFor(env, { location });
  });
  afterEach(async () => {
    await s3Cleanup(client, env.bucket, `${location}/`);
    storage.destroy();
  });
  afterAll(() => client.destroy());

  it('serves the bytes at a presigned URL, with the download disposition', async () => {
    const { key } = await storage.save('share/report.pdf', 'pdf bytes');
    const response = await fetch(await storage.url(key, { download: 'Résumé 2026.pdf' }));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('pdf bytes');
    expect(response.headers.get('content-disposition')).toBe(
      `attachment; filename="R_sum_ 2026.pdf"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf`,
    );
  });

  it('refuses an expired or tampered presigned URL', async () => {
    const { key } = await storage.save('share/secret.txt', 'secret');
    const past = s3StorageFor(env, { location, now: () => new Date(Date.now() - 2 * 3600_000) });
    expect((await fetch(await past.url(key, { expiresIn: 3600 }))).status).toBe(403);
    const url = new URL(await storage.url(key));
    const signature = url.searchParams.get('X-Amz-Signature') ?? '';
    url.searchParams.set('X-Amz-Signature', `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`);
    expect((await fetch(url)).status).toBe(403);
    past.destroy();
  });

  it('treats a pending claim as missing, and never saves over it', async () => {
    // What a concurrent stream save leaves while its upload is in flight.
    await client.send(
      new PutObjectCommand({
        Bucket: env.bucket,
        Key: `${location}/claimed/file.bin`,
        Body: new Uint8Array(0),
        Metadata: { 'doorito-claim': '1' },
      }),
    );
    await expect(storage.stat('claimed/file.bin')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(storage.open('claimed/file.bin')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await storage.exists('claimed/file.bin')).toBe(false);
    expect((await storage.save('claimed/file.bin', 'small')).key).not.toBe('claimed/file.bin');
    expect((await storage.save('claimed/file.bin', patternStream(1024))).key).not.toBe('claimed/file.bin');
  });

  it('returns the real ETag of a multipart upload (Ceph answers Complete with an empty one)', async () => {
    const size = 11 * 1024 * 1024;
    const result = await storage.save('mp/big.bin', patternStream(size, 7));
    expect(result.size).toBe(size);
    expect(result.etag).toMatch(/^"[0-9a-f]{32}-3"$/u);
    expect((await storage.stat(result.key)).etag).toBe(result.etag);
    expect(await sha256(await storage.open(result.key))).toBe(await sha256(patternStream(size, 7)));
  });

  it('streams a Blob larger than a part with its known length', async () => {
    const bytes = Buffer.alloc(6 * 1024 * 1024, 0x5a);
    const result = await storage.save('mp/blob.bin', new Blob([bytes]));
    expect(result.size).toBe(bytes.length);
    expect((await storage.stat(result.key)).size).toBe(bytes.length);
  });

  it('pages through more than 1000 objects', async () => {
    const keys = Array.from({ length: 1010 }, (_, i) => `many/${String(i).padStart(4, '0')}.txt`);
    for (let i = 0; i < keys.length; i += 32) {
      await Promise.all(keys.slice(i, i + 32).map((key) => storage.save(key, 'x', { overwrite: true })));
    }
    const listed: string[] = [];
    for await (const entry of storage.list('many/')) listed.push(entry.key);
    expect(listed).toEqual(keys);
  });

  it("with noOverwrite: 'head' still picks a free name for sequential saves", async () => {
    const head = s3StorageFor(env, { location, noOverwrite: 'head' });
    expect((await head.save('h/a.txt', 'one')).key).toBe('h/a.txt');
    expect((await head.save('h/a.txt', 'two')).key).toMatch(/^h\/a_[a-zA-Z0-9]{7}\.txt$/u);
    expect((await head.save('h/a.txt', patternStream(10))).key).toMatch(/^h\/a_[a-zA-Z0-9]{7}\.txt$/u);
    expect(await text(await head.open('h/a.txt'))).toBe('one');
    head.destroy();
  });

  it('works with an injected S3Client', async () => {
    const injected = new S3Storage({ client, bucket: env.bucket, location });
    const { key } = await injected.save('inj/a.txt', 'hi');
    expect(await text(await injected.open(key))).toBe('hi');
  });

  it('reports a wrong secret as StorageConfigError naming the fix, without the secret', async () => {
    const secret = 'definitely-wrong-secret-0123456789';
    const wrong = new S3Storage({
      bucket: env.bucket,
      endpoint: env.endpoint,
      region: env.region,
      credentials: { accessKeyId: env.accessKeyId, secretAccessKey: secret },
      location,
    });
    const error = await wrong.save('w/a.txt', 'x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConfigError);
    expect((error as Error).message).toMatch(/SignatureDoesNotMatch/u);
    expect((error as Error).message).toMatch(/secret key/u);
    expect((error as Error).message).not.toContain(secret);
    expect(inspect(wrong, { depth: 10 })).not.toContain(secret);
    expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
    wrong.destroy();
  });

  it('reports a missing bucket as StorageConfigError', async () => {
    const missing = s3StorageFor(env, { bucket: `missing-${randomUUID()}` });
    const error = await missing.save('a.txt', 'x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageConfigError);
    expect((error as Error).message).toMatch(/bucket does not exist/u);
    await expect(missing.open('a.txt')).rejects.toBeInstanceOf(StorageConfigError);
    // A HEAD answer has no body, so stat() cannot tell a missing bucket from a missing key.
    await expect(missing.stat('a.txt')).rejects.toBeInstanceOf(ObjectNotFoundError);
    missing.destroy();
  });

  it('leaves no multipart upload behind when the server refuses a part', async () => {
    // A part upload into a multipart upload that was aborted under it fails with NoSuchUpload.
    const controller = new AbortController();
    let started = false;
    const source = patternStream(30 * 1024 * 1024, 3, (sent) => {
      if (!started && sent > 12 * 1024 * 1024) {
        started = true;
        void (async () => {
          const { ListMultipartUploadsCommand } = await import('@aws-sdk/client-s3');
          const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: env.bucket, Prefix: `${location}/` }));
          for (const u of uploads.Uploads ?? []) {
            await client.send(new AbortMultipartUploadCommand({ Bucket: env.bucket, Key: u.Key, UploadId: u.UploadId }));
          }
        })();
      }
    });
    const error = await storage.save('refused/big.bin', source, { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'E_WRITE_FAILED', key: 'refused/big.bin' });
    expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
  });

  it('cleans up after itself: a raw multipart upload shows up in the leftovers check', async () => {
    // Guards the guard: prove s3Leftovers sees an unfinished multipart upload.
    const created = await client.send(new CreateMultipartUploadCommand({ Bucket: env.bucket, Key: `${location}/raw.bin` }));
    expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([`multipart upload ${location}/raw.bin ${created.UploadId}`]);
  });
});
