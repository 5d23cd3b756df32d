/**
 * UploadService end to end on real storage: upload, read the file.stored event, fetch the URL
 * it carries, and get the same bytes with the same sha256. Filesystem through a real static
 * HTTP server; S3 against the real server of this run.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryUploadStore, UploadService, type FileStoredPayload, type Storage } from '../../src/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { describeS3, rawClient } from '../helpers/s3-env.js';
import { s3Cleanup, s3StorageFor } from '../helpers/s3-fixture.js';
import { patternStream, sha256 } from '../helpers/streams.js';

const MiB = 1024 * 1024;

async function uploadAndFetch(storage: Storage, size: number) {
  const store = new MemoryUploadStore();
  const service = new UploadService({ storage, repository: store.repository, unitOfWork: store });
  const file = await service.createUploadFile({ content: patternStream(size, 42), filename: 'Site survey 2026.bin', uploadedBy: 'alice' });
  expect(file.status).toBe('stored');
  const [event] = await store.events();
  expect(event?.eventType).toBe('file.stored');
  const payload = event?.payload as unknown as FileStoredPayload;
  const response = await fetch(payload.url);
  expect(response.status).toBe(200);
  const bytes = Buffer.from(await response.arrayBuffer());
  expect(bytes.length).toBe(size);
  expect(createHash('sha256').update(bytes).digest('hex')).toBe(payload.sha256);
  expect(payload.sha256).toBe(await sha256(patternStream(size, 42)));
  expect(payload).toMatchObject({ file_id: file.id, size_bytes: size, storage_key: file.storageKey, original_filename: 'Site survey 2026.bin' });
  return { service, store, payload, file };
}

describe('UploadService on the filesystem, served over HTTP', () => {
  let dir: string;
  let server: Server;
  let storage: FileSystemStorage;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'doorito-upload-'));
    // A plain static route: GET /media/<key> streams the file (keys are already validated).
    server = createServer((req, res) => {
      const key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/media\//u, ''));
      createReadStream(path.join(dir, ...key.split('/')))
        .on('error', () => res.writeHead(404).end())
        .pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    storage = new FileSystemStorage({ location: dir, baseUrl: `http://127.0.0.1:${port}/media/` });
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('upload → file.stored → fetch(url) gives the same bytes and sha256', async () => {
    const { payload } = await uploadAndFetch(storage, 3 * MiB + 17);
    expect(payload).not.toHaveProperty('url_expires_at');
  });
});

describeS3('UploadService on S3', (env) => {
  const client = rawClient(env);
  const location = `upload-${randomUUID()}`;
  const storage = s3StorageFor(env, { location });
  afterAll(async () => {
    await s3Cleanup(client, env.bucket, `${location}/`);
    storage.destroy();
    client.destroy();
  });

  it('upload → file.stored → fetch(presigned url) gives the same bytes and sha256', async () => {
    const { payload } = await uploadAndFetch(storage, 12 * MiB + 5);
    expect(new Date(payload.url_expires_at ?? 0).getTime()).toBeGreaterThan(Date.now() + 3500_000);
  });

  it('serves an HTML upload as an attachment, never inline', async () => {
    const store = new MemoryUploadStore();
    const service = new UploadService({ storage, repository: store.repository, unitOfWork: store });
    const file = await service.createUploadFile({ content: '<script>alert(document.cookie)</script>', filename: 'invoice.html' });
    const [event] = await store.events();
    for (const url of [String(event?.payload['url']), (await service.getFileUrl(file.id)).url]) {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-disposition')).toMatch(/^attachment;/u);
    }
    // Even a plain presigned URL (no response override) gets the stored disposition.
    const plain = await fetch(await storage.url(file.storageKey));
    expect(plain.headers.get('content-disposition')).toMatch(/^attachment;/u);
  });

  it('keeps memory flat for a 256 MiB upload through the service', async () => {
    const store = new MemoryUploadStore();
    const service = new UploadService({ storage, repository: store.repository, unitOfWork: store, maxSizeBytes: 512 * MiB });
    await service.createUploadFile({ content: patternStream(32 * MiB), filename: 'warm.bin' });
    globalThis.gc?.();
    const base = process.memoryUsage.rss();
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
    const file = await service.createUploadFile({ content: patternStream(256 * MiB, 9), filename: 'large.bin' }).finally(() => clearInterval(timer));
    console.info(`upload service: peak RSS growth ${((peak - base) / MiB).toFixed(1)} MiB for 256 MiB`);
    expect(file).toMatchObject({ status: 'stored', sizeBytes: 256 * MiB });
    expect(peak - base).toBeLessThan(160 * MiB);
  });
});
