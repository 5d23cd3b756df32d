/**
 * Direct uploads end to end: createDirectUpload → the client sends the bytes itself (to the
 * S3 server, to the app's upload route over HTTP, or to the memory storage's receiver) →
 * completeDirectUpload → `stored` with its `file.stored` event. On memory, the filesystem,
 * Ceph RGW and Swift; multipart of ≥ 20 MiB on both S3 servers. Every refusal leaves nothing.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DIRECT_UPLOAD_COMPLETE_GRACE_MS,
  MemoryStorage,
  MemoryUploadStore,
  UploadService,
  isDirectUploadExpiredError,
  isDirectUploadIncompleteError,
  isStorageConfigError,
  isUploadNotFoundError,
  type FileStoredPayload,
  type PresignedPost,
  type PresignedUpload,
  type Storage,
  type UploadServiceOptions,
} from '../../src/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { describeS3, rawClient } from '../helpers/s3-env.js';
import { s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { readAll } from '../helpers/streams.js';
import { fetchUpload, receiveUploadStatus, startUploadRoute } from '../helpers/upload-route.js';

const MiB = 1024 * 1024;
const HOUR = 3600_000;

interface Backend {
  storage: Storage;
  send(upload: PresignedUpload, body: Buffer): Promise<number>;
  /** Everything the storage holds (objects, unfinished uploads, temp files). */
  leftovers(): Promise<string[]>;
  cleanup(): Promise<void>;
  multipart: boolean;
}

const bytes = (size: number, seed: number): Buffer => {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 1) out[i] = (i * 31 + seed * 7 + (i >> 10)) & 0xff;
  return out;
};
const sha256 = (body: Buffer): string => createHash('sha256').update(body).digest('hex');
const md5 = (body: Buffer): string => createHash('md5').update(body).digest('base64');

function directUploadSuite(name: string, makeBackend: () => Promise<Backend>): void {
  describe(`direct uploads: ${name}`, () => {
    let backend: Backend;
    let store: MemoryUploadStore;
    let now: number;
    const service = (options: UploadServiceOptions = {}) =>
      new UploadService({ storage: backend.storage, repository: store.repository, unitOfWork: store, clock: () => new Date(now), ...options });

    beforeEach(async () => {
      backend = await makeBackend();
      store = new MemoryUploadStore();
      now = Date.now();
    });
    afterEach(async () => {
      await backend.cleanup();
    });

    it('initiate → PUT → complete: stored with file.stored, the same sha256 as the bytes; a second complete returns the same record', async () => {
      const uploads = service();
      const body = bytes(300_000, 1);
      const { file, upload } = await uploads.createDirectUpload({ filename: 'Site plan 2026.pdf', size: body.length, md5: md5(body), uploadedBy: 'alice' });
      expect(file).toMatchObject({ status: 'uploading', contentType: 'application/pdf', uploadedBy: 'alice' });
      expect(file.storageKey).toMatch(/^uploads\/\d{4}\/\d{2}\/Site_plan_2026\.pdf$/u);
      expect(file.directUpload).toMatchObject({ method: 'put', size: body.length, md5: md5(body) });
      if (upload?.method !== 'PUT') throw new Error(`expected a PUT, got ${JSON.stringify(upload)}`);
      expect(upload.headers).toEqual({ 'Content-Type': 'application/pdf', 'Content-MD5': md5(body) });
      expect(await store.events()).toEqual([]);

      expect(await backend.send(upload, body)).toBe(200);
      const stored = await uploads.completeDirectUpload(file.id);
      expect(stored).toMatchObject({ id: file.id, status: 'stored', sizeBytes: body.length, sha256: sha256(body), storageKey: file.storageKey });
      const events = await store.events();
      expect(events.map((e) => e.eventType)).toEqual(['file.stored']);
      const payload = events[0]?.payload as unknown as FileStoredPayload;
      expect(payload).toMatchObject({ file_id: file.id, sha256: sha256(body), size_bytes: body.length, content_type: 'application/pdf' });
      expect(sha256(await readAll(await backend.storage.open(file.storageKey)))).toBe(payload.sha256);

      expect(await uploads.completeDirectUpload(file.id)).toEqual(stored);
      expect((await store.events()).length).toBe(1);
    });

    it('two completes at once: both answer the stored record, with one file.stored event', async () => {
      const uploads = service();
      const body = bytes(120_000, 9);
      const { file, upload } = await uploads.createDirectUpload({ filename: 'twice.bin', size: body.length, sha256: sha256(body) });
      expect(await backend.send(upload as PresignedUpload, body)).toBe(200);
      const [a, b] = await Promise.all([uploads.completeDirectUpload(file.id), uploads.completeDirectUpload(file.id)]);
      expect(a).toMatchObject({ status: 'stored', sha256: sha256(body) });
      expect(b).toEqual(a);
      expect((await store.events()).map((e) => e.eventType)).toEqual(['file.stored']);
    });

    it('complete before the bytes arrived is DirectUploadIncompleteError and changes nothing; after the PUT it completes', async () => {
      const uploads = service();
      const body = bytes(1000, 2);
      const { file, upload } = await uploads.createDirectUpload({ filename: 'late.bin', size: body.length });
      const early = await uploads.completeDirectUpload(file.id).catch((e: unknown) => e);
      expect(isDirectUploadIncompleteError(early)).toBe(true);
      expect((early as Error & { code: string }).code).toBe('E_UPLOAD_INCOMPLETE');
      expect((await store.repository.getFile(file.id))?.status).toBe('uploading');
      expect(await backend.send(upload as PresignedUpload, body)).toBe(200);
      expect((await uploads.completeDirectUpload(file.id)).status).toBe('stored');
    });

    it('other bytes of the declared size: complete fails the checksum, deletes the object, emits nothing', async () => {
      const uploads = service();
      const declared = bytes(50_000, 3);
      const sent = bytes(50_000, 4);
      const { file, upload } = await uploads.createDirectUpload({ filename: 'report.csv', size: declared.length, sha256: sha256(declared) });
      expect(await backend.send(upload as PresignedUpload, sent)).toBe(200);
      const failed = await uploads.completeDirectUpload(file.id);
      expect(failed).toMatchObject({ status: 'failed', errorCode: 'checksum_mismatch' });
      expect(await store.events()).toEqual([]);
      expect(await backend.leftovers()).toEqual([]);
      // Idempotent: the same answer again.
      expect(await uploads.completeDirectUpload(file.id)).toEqual(failed);
    });

    it('refuses at initiate, as createUploadFile does: too large, a type not allowed, a bad name, a bad checksum', async () => {
      const uploads = service({ maxSizeBytes: 1000, allowedTypes: ['image/*', 'application/pdf'] });
      const cases: Array<[Parameters<typeof uploads.createDirectUpload>[0], string]> = [
        [{ filename: 'big.pdf', size: 1001 }, 'file_too_large'],
        [{ filename: 'run.exe', size: 10 }, 'file_type_not_allowed'],
        [{ filename: '', size: 10 }, 'invalid_filename'],
        [{ filename: 'a.pdf', size: -1 }, 'invalid_size'],
        [{ filename: 'a.pdf', size: 10, md5: 'nope' }, 'invalid_checksum'],
        [{ filename: 'a.pdf', size: 10, sha256: 'ABC' }, 'invalid_checksum'],
      ];
      for (const [input, code] of cases) {
        const result = await uploads.createDirectUpload(input);
        expect(result.upload, code).toBeUndefined();
        expect(result.file).toMatchObject({ status: 'failed', errorCode: code });
        expect((await store.repository.getFile(result.file.id))?.status).toBe('failed');
      }
      expect(await backend.leftovers()).toEqual([]);
    });

    it('an HTML file must be sent with Content-Disposition: attachment, and is stored so', async () => {
      const uploads = service();
      const body = Buffer.from('<script>alert(1)</script>');
      const { file, upload } = await uploads.createDirectUpload({ filename: 'invoice.html', size: body.length });
      expect(upload?.method).toBe('PUT');
      const put = upload as PresignedUpload;
      expect(put.headers['Content-Disposition']).toMatch(/^attachment; filename="invoice\.html"/u);
      // Without the header the storage refuses it.
      const without = Object.fromEntries(Object.entries(put.headers).filter(([name]) => name !== 'Content-Disposition'));
      expect(await backend.send({ ...put, headers: without }, body)).toBeGreaterThanOrEqual(400);
      expect(await backend.send(put, body)).toBe(200);
      expect((await uploads.completeDirectUpload(file.id)).status).toBe('stored');
    });

    it('past its deadline, complete is DirectUploadExpiredError; the record is failed and nothing is left', async () => {
      const uploads = service({ directUploadExpiresIn: 60 });
      const body = bytes(100, 5);
      const { file, upload } = await uploads.createDirectUpload({ filename: 'slow.txt', size: body.length });
      expect(await backend.send(upload as PresignedUpload, body)).toBe(200);
      now += 60_000 + DIRECT_UPLOAD_COMPLETE_GRACE_MS + 1000;
      const error = await uploads.completeDirectUpload(file.id).catch((e: unknown) => e);
      expect(isDirectUploadExpiredError(error)).toBe(true);
      expect((error as Error & { code: string }).code).toBe('E_UPLOAD_EXPIRED');
      expect(await store.repository.getFile(file.id)).toMatchObject({ status: 'failed', errorCode: 'expired' });
      expect(await backend.leftovers()).toEqual([]);
      expect(await store.events()).toEqual([]);
    });

    it('abort: the record is failed (aborted) and what arrived is removed', async () => {
      const uploads = service();
      const body = bytes(100, 6);
      const { file, upload } = await uploads.createDirectUpload({ filename: 'gone.txt', size: body.length });
      expect(await backend.send(upload as PresignedUpload, body)).toBe(200);
      expect(await uploads.abortDirectUpload(file.id)).toMatchObject({ status: 'failed', errorCode: 'aborted' });
      expect(await backend.leftovers()).toEqual([]);
      const late = await uploads.completeDirectUpload(file.id);
      expect(late).toMatchObject({ status: 'failed', errorCode: 'aborted' });
    });

    it('an unknown id is UploadNotFoundError; an object already at the key is never replaced', async () => {
      const uploads = service();
      expect(isUploadNotFoundError(await uploads.completeDirectUpload(randomUUID()).catch((e: unknown) => e))).toBe(true);
      // Something (an orphan, another app) already sits where the key would go.
      const first = await uploads.createDirectUpload({ filename: 'taken.txt', size: 1 });
      const key = first.file.storageKey;
      await uploads.abortDirectUpload(first.file.id);
      await backend.storage.save(key, 'not mine', { overwrite: true });
      const second = await uploads.createDirectUpload({ filename: 'taken.txt', size: 1 });
      expect(second.file.storageKey).not.toBe(key);
      expect(second.file.storageKey).toMatch(/^uploads\/\d{4}\/\d{2}\/taken_[a-zA-Z0-9]{7}\.txt$/u);
      await backend.storage.delete(key);
    });

    it('goes multipart from the threshold up where the storage has it, else asks for a PUT', async () => {
      const uploads = service({ multipartThreshold: 100 });
      expect((await uploads.createDirectUpload({ filename: 'small.bin', size: 99 })).upload?.method).toBe('PUT');
      const auto = await uploads.createDirectUpload({ filename: 'big.bin', size: 100 });
      expect(auto.upload?.method).toBe(backend.multipart ? 'multipart' : 'PUT');
      if (backend.multipart) {
        await uploads.abortDirectUpload(auto.file.id);
        expect(await backend.leftovers()).toEqual([]);
        return;
      }
      for (const method of ['multipart', 'post'] as const) {
        const error = await uploads.createDirectUpload({ filename: 'big.bin', size: 100, method }).catch((e: unknown) => e);
        expect(isStorageConfigError(error)).toBe(true);
        expect((error as { option?: string }).option).toBe('method');
        expect((error as Error).message).toContain(`"${method}"`);
      }
    });
  });
}

directUploadSuite('MemoryStorage', async () => {
  const storage = new MemoryStorage();
  return {
    storage,
    send: (upload, body) => receiveUploadStatus(storage, upload, body),
    leftovers: async () => {
      const keys: string[] = [];
      for await (const entry of storage.list()) keys.push(entry.key);
      return keys;
    },
    cleanup: async () => undefined,
    multipart: false,
  };
});

directUploadSuite('FileSystemStorage behind the app route, over HTTP', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'doorito-direct-'));
  const route = await startUploadRoute();
  const storage = new FileSystemStorage({ location: dir, baseUrl: route.baseUrl });
  route.use(storage);
  return {
    storage,
    send: fetchUpload,
    leftovers: async () => (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => !e.isDirectory()).map((e) => e.name),
    cleanup: async () => {
      await route.close();
      await rm(dir, { recursive: true, force: true });
    },
    multipart: false,
  };
});

describeS3('direct uploads on S3', (env) => {
  const client = rawClient(env);
  afterAll(() => client.destroy());

  directUploadSuite('S3Storage', async () => {
    const location = `direct-${randomUUID()}`;
    const storage = s3StorageFor(env, { location });
    return {
      storage,
      send: fetchUpload,
      leftovers: () => s3Leftovers(client, env.bucket, `${location}/`),
      cleanup: async () => {
        await s3Cleanup(client, env.bucket, `${location}/`);
        storage.destroy();
      },
      multipart: true,
    };
  });

  describe('presigned POST form', () => {
    const location = `direct-post-${randomUUID()}`;
    const storage = s3StorageFor(env, { location });
    let store: MemoryUploadStore;
    const uploads = () => new UploadService({ storage, repository: store.repository, unitOfWork: store });
    beforeEach(() => {
      store = new MemoryUploadStore();
    });
    afterEach(async () => {
      await s3Cleanup(client, env.bucket, `${location}/`);
    });
    afterAll(() => storage.destroy());

    /** A browser's form submit: the fields, then the file last. */
    const submit = async (target: PresignedPost, body: Buffer, type: string, fields: Record<string, string> = {}) => {
      const form = new FormData();
      for (const [name, value] of Object.entries({ ...target.fields, ...fields })) form.append(name, value);
      form.append('file', new Blob([body], { type }), 'form-upload.bin');
      const response = await fetch(target.url, { method: 'POST', body: form });
      return { status: response.status, text: await response.text() };
    };

    it('the policy pins key, type and exact size, and never carries the secret key', async () => {
      const service = uploads();
      const body = bytes(40_000, 11);
      const { file, upload } = await service.createDirectUpload({ filename: 'form.png', size: body.length, method: 'post' });
      if (upload?.method !== 'POST') throw new Error(`expected a POST, got ${JSON.stringify(upload)}`);
      expect(file.directUpload).toMatchObject({ method: 'post', size: body.length });
      expect(upload.fields).toMatchObject({ key: `${location}/${file.storageKey}`, 'Content-Type': 'image/png', 'x-amz-algorithm': 'AWS4-HMAC-SHA256' });
      const policy = JSON.parse(Buffer.from(upload.fields.policy as string, 'base64').toString('utf8')) as { conditions: unknown[]; expiration: string };
      expect(policy.conditions).toContainEqual(['content-length-range', body.length, body.length]);
      expect(policy.conditions).toContainEqual({ key: `${location}/${file.storageKey}` });
      expect(policy.conditions).toContainEqual({ 'Content-Type': 'image/png' });
      expect(new Date(policy.expiration).getTime()).toBe(upload.expiresAt.getTime());
      expect(JSON.stringify(upload)).not.toContain(env.secretAccessKey);
    });

    if (env.provider === 'swift') {
      it("Swift's S3 API refuses every POST upload (412): the docs say to use a PUT there", async () => {
        const service = uploads();
        const body = bytes(1000, 12);
        const { file, upload } = await service.createDirectUpload({ filename: 'form.bin', size: body.length, method: 'post' });
        const sent = await submit(upload as PresignedPost, body, 'application/octet-stream');
        expect(sent.status).toBe(412);
        expect(isDirectUploadIncompleteError(await service.completeDirectUpload(file.id).catch((e: unknown) => e))).toBe(true);
        expect((await service.abortDirectUpload(file.id)).status).toBe('failed');
        expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
      });
      return;
    }

    it('a form POST stores the file (204), and complete records it with file.stored and the sha256 of the bytes', async () => {
      const service = uploads();
      const body = bytes(300_000, 13);
      const { file, upload } = await service.createDirectUpload({ filename: 'scan.png', size: body.length, md5: md5(body), method: 'post' });
      const sent = await submit(upload as PresignedPost, body, 'image/png');
      expect(sent.status).toBe(204);
      const stored = await service.completeDirectUpload(file.id);
      expect(stored).toMatchObject({ status: 'stored', sizeBytes: body.length, sha256: sha256(body), contentType: 'image/png' });
      expect((await storage.stat(file.storageKey)).contentType).toBe('image/png');
      expect((await store.events()).map((e) => e.eventType)).toEqual(['file.stored']);
    });

    it('the server refuses more or fewer bytes, another type and another key; nothing is stored', async () => {
      const service = uploads();
      const body = bytes(50_000, 14);
      const { file, upload } = await service.createDirectUpload({ filename: 'exact.png', size: body.length, method: 'post' });
      const target = upload as PresignedPost;
      const bigger = await submit(target, Buffer.concat([body, Buffer.from('x')]), 'image/png');
      expect(bigger.status).toBe(400);
      expect(bigger.text).toContain('EntityTooLarge');
      const smaller = await submit(target, body.subarray(1), 'image/png');
      expect(smaller.status).toBe(400);
      expect(smaller.text).toContain('EntityTooSmall');
      expect((await submit(target, body, 'text/html', { 'Content-Type': 'text/html' })).status).toBe(403);
      expect((await submit(target, body, 'image/png', { key: `${location}/uploads/elsewhere.png` })).status).toBe(403);
      expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
      expect(isDirectUploadIncompleteError(await service.completeDirectUpload(file.id).catch((e: unknown) => e))).toBe(true);
    });

    it('a tampered policy or an expired one is refused', async () => {
      const body = bytes(2000, 15);
      const target = await storage.presignPost('uploads/expiring.bin', { contentType: 'application/octet-stream', size: body.length, expiresIn: 1 });
      const policy = JSON.parse(Buffer.from(target.fields.policy as string, 'base64').toString('utf8')) as { conditions: unknown[] };
      const widened = { ...policy, conditions: policy.conditions.map((c) => (Array.isArray(c) ? ['content-length-range', 0, 10 * MiB] : c)) };
      const tampered = await submit(target, body, 'application/octet-stream', { policy: Buffer.from(JSON.stringify(widened)).toString('base64') });
      expect(tampered.status).toBe(403);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const late = await submit(target, body, 'application/octet-stream');
      expect(late.status).toBe(403);
      expect(late.text).toMatch(/AccessDenied|expired/iu);
      expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
    });
  });

  describe('multipart', () => {
    const location = `direct-mp-${randomUUID()}`;
    const storage = s3StorageFor(env, { location });
    let store: MemoryUploadStore;
    let now: number;
    const service = () =>
      new UploadService({ storage, repository: store.repository, unitOfWork: store, clock: () => new Date(now), maxSizeBytes: 256 * MiB, multipartThreshold: 16 * MiB });
    beforeEach(() => {
      store = new MemoryUploadStore();
      now = Date.now();
    });
    afterEach(async () => {
      await s3Cleanup(client, env.bucket, `${location}/`);
    });
    afterAll(() => storage.destroy());

    const sendParts = async (uploads: UploadService, fileId: string, body: Buffer, partNumbers: number[]) => {
      const parts = await uploads.presignDirectUploadParts(fileId, partNumbers);
      const statuses = await Promise.all(
        parts.map(async (part) => {
          const start = (part.partNumber - 1) * (8 * MiB);
          return fetchUpload(part, body.subarray(start, start + part.size));
        }),
      );
      return { parts, statuses };
    };

    it('a 21 MiB file in three presigned parts reaches stored with the sha256 of its bytes', async () => {
      const uploads = service();
      const body = bytes(21 * MiB + 123, 7);
      const { file, upload } = await uploads.createDirectUpload({ filename: 'survey.bin', size: body.length, sha256: sha256(body) });
      expect(upload).toMatchObject({ method: 'multipart', partSize: 8 * MiB, partCount: 3 });
      expect(file.directUpload?.uploadId).toEqual(expect.any(String));
      const { parts, statuses } = await sendParts(uploads, file.id, body, [1, 2, 3]);
      expect(statuses).toEqual([200, 200, 200]);
      expect(parts.map((p) => p.size)).toEqual([8 * MiB, 8 * MiB, 5 * MiB + 123]);
      expect((await uploads.listDirectUploadParts(file.id)).map((p) => [p.partNumber, p.size])).toEqual([
        [1, 8 * MiB],
        [2, 8 * MiB],
        [3, 5 * MiB + 123],
      ]);
      const stored = await uploads.completeDirectUpload(file.id);
      expect(stored).toMatchObject({ status: 'stored', sizeBytes: body.length, sha256: sha256(body) });
      const [event] = await store.events();
      expect((event?.payload as unknown as FileStoredPayload).sha256).toBe(sha256(body));
      const response = await fetch((event?.payload as unknown as FileStoredPayload).url);
      expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(body));
      expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([`object ${location}/${file.storageKey}`]);
      expect(await uploads.completeDirectUpload(file.id)).toEqual(stored);
    });

    it('a part larger than signed is refused by the server; complete names the missing part', async () => {
      const uploads = service();
      const body = bytes(17 * MiB, 8);
      const { file } = await uploads.createDirectUpload({ filename: 'parts.bin', size: body.length });
      const [first, second, third] = await uploads.presignDirectUploadParts(file.id, [1, 2, 3]);
      expect(await fetchUpload(first!, body.subarray(0, 8 * MiB))).toBe(200);
      expect(await fetchUpload(second!, body.subarray(8 * MiB, 16 * MiB))).toBe(200);
      // The last part is 1 MiB; 2 MiB through its URL is refused.
      expect(await fetchUpload(third!, body.subarray(8 * MiB, 10 * MiB))).toBe(403);
      const error = await uploads.completeDirectUpload(file.id).catch((e: unknown) => e);
      expect(isDirectUploadIncompleteError(error)).toBe(true);
      expect((error as { missingParts: number[] }).missingParts).toEqual([3]);
      expect(await fetchUpload(third!, body.subarray(16 * MiB))).toBe(200);
      expect((await uploads.completeDirectUpload(file.id)).sha256).toBe(sha256(body));
    });

    it('maintenance leaves a direct upload alone until its deadline, however old', async () => {
      const uploads = new UploadService({
        storage,
        repository: store.repository,
        unitOfWork: store,
        clock: () => new Date(now),
        multipartThreshold: 16 * MiB,
        maxSizeBytes: 256 * MiB,
        directUploadExpiresIn: 3 * 24 * 3600,
      });
      const body = bytes(17 * MiB, 10);
      const { file } = await uploads.createDirectUpload({ filename: 'slow-client.bin', size: body.length });
      const { statuses } = await sendParts(uploads, file.id, body, [1]);
      expect(statuses).toEqual([200]);
      now += 25 * HOUR; // past reconcile's grace, not past the upload's 3 days
      const report = await uploads.reconcile();
      expect(report).toMatchObject({ interruptedUploads: 0, pendingWrites: 0, orphanObjects: 0 });
      expect((await store.repository.getFile(file.id))?.status).toBe('uploading');
      expect(await uploads.listDirectUploadParts(file.id)).toHaveLength(1);
      // The client comes back and finishes.
      expect((await sendParts(uploads, file.id, body, [2, 3])).statuses).toEqual([200, 200]);
      expect((await uploads.completeDirectUpload(file.id)).sha256).toBe(sha256(body));
    });

    it('abandoned: half the parts sent, never completed; after maintenance nothing is left', async () => {
      const uploads = service();
      const body = bytes(32 * MiB, 9);
      const { file } = await uploads.createDirectUpload({ filename: 'abandoned.bin', size: body.length });
      const { statuses } = await sendParts(uploads, file.id, body, [1, 2]);
      expect(statuses).toEqual([200, 200]);
      expect(await s3Leftovers(client, env.bucket, `${location}/`)).toHaveLength(1); // the multipart upload
      now += 25 * HOUR;
      let report = await uploads.reconcile();
      while (report.cursor !== undefined) report = await uploads.reconcile({ cursor: report.cursor });
      expect(await store.repository.getFile(file.id)).toMatchObject({ status: 'failed' });
      expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
    });
  });
});
