import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidTransitionError,
  MemoryStorage,
  MemoryUploadStore,
  StorageAbortedError,
  StorageDeleteError,
  StoragePermissionError,
  UploadFailedError,
  UploadNotFoundError,
  UploadService,
  type UnitOfWork,
  type UploadServiceOptions,
} from '../../src/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { patternStream, sha256 } from '../helpers/streams.js';

const MiB = 1024 * 1024;
const T0 = new Date('2026-11-27T10:00:00Z');

async function keys(storage: MemoryStorage): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of storage.list()) out.push(entry.key);
  return out;
}

describe('UploadService', () => {
  let storage: MemoryStorage;
  let store: MemoryUploadStore;
  let now: Date;
  const service = (options: UploadServiceOptions = {}, unitOfWork: UnitOfWork = store) =>
    new UploadService({ storage, repository: store.repository, unitOfWork, clock: () => now, ...options });

  beforeEach(() => {
    storage = new MemoryStorage({ baseUrl: 'https://files.example/' });
    store = new MemoryUploadStore();
    now = T0;
  });

  describe('createUploadFile', () => {
    it('stores, hashes, records and emits file.stored with the URL', async () => {
      const body = 'a,b\n1,2\n';
      const file = await service().createUploadFile({ content: Readable.from([body]), filename: 'Quarterly Report.csv', uploadedBy: 'alice' });
      expect(file).toMatchObject({
        status: 'stored',
        storageKey: 'uploads/2026/11/Quarterly_Report.csv',
        originalFilename: 'Quarterly Report.csv',
        contentType: 'text/csv',
        sizeBytes: body.length,
        sha256: createHash('sha256').update(body).digest('hex'),
        uploadedBy: 'alice',
      });
      expect(file.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/u);
      expect(await text(await storage.open(file.storageKey))).toBe(body);
      expect(await store.repository.getFile(file.id)).toEqual(file);
      const events = await store.events();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        aggregateType: 'UploadFile',
        aggregateId: file.id,
        eventType: 'file.stored',
        idempotencyKey: `UploadFile:${file.id}`,
        payload: {
          file_id: file.id,
          original_filename: 'Quarterly Report.csv',
          content_type: 'text/csv',
          size_bytes: body.length,
          sha256: file.sha256,
          url: 'https://files.example/uploads/2026/11/Quarterly_Report.csv',
          storage_key: file.storageKey,
        },
      });
      expect(events[0]?.payload).not.toHaveProperty('url_expires_at');
    });

    it('builds keys from the injected clock, in UTC', async () => {
      now = new Date('2027-01-31T23:30:00-05:00'); // 2027-02-01 in UTC
      const file = await service().createUploadFile({ content: 'x', filename: 'a.txt' });
      expect(file.storageKey).toBe('uploads/2027/02/a.txt');
      const custom = await service({ keyTemplate: 'in/%Y-%m-%d/%H/' }).createUploadFile({ content: 'x', filename: 'a.txt' });
      expect(custom.storageKey).toBe('in/2027-02-01/04/a.txt');
    });

    it('refuses a bad filename with a failed record, storing nothing', async () => {
      const source = patternStream(10 * MiB);
      const file = await service().createUploadFile({ content: source, filename: '../../..' });
      expect(file).toMatchObject({ status: 'failed', errorCode: 'invalid_filename', originalFilename: '../../..', storageKey: '' });
      expect(await store.repository.getFile(file.id)).toMatchObject({ status: 'failed' });
      expect(source.destroyed).toBe(true);
      expect(await keys(storage)).toEqual([]);
      expect(await store.events()).toEqual([]);
    });

    it('refuses a type outside allowedTypes', async () => {
      const file = await service({ allowedTypes: ['image/png', 'application/pdf'] }).createUploadFile({ content: 'x', filename: 'evil.exe' });
      expect(file).toMatchObject({ status: 'failed', errorCode: 'file_type_not_allowed', contentType: 'application/x-msdos-program' });
      expect(await keys(storage)).toEqual([]);
      const ok = await service({ allowedTypes: ['image/png'] }).createUploadFile({ content: 'x', filename: 'p.png' });
      expect(ok.status).toBe('stored');
    });

    it('accepts type families like image/*', async () => {
      const svc = service({ allowedTypes: ['image/*', 'application/pdf'] });
      expect((await svc.createUploadFile({ content: 'x', filename: 'a.webp' })).status).toBe('stored');
      expect((await svc.createUploadFile({ content: 'x', filename: 'a.pdf' })).status).toBe('stored');
      expect((await svc.createUploadFile({ content: 'x', filename: 'a.txt' })).errorCode).toBe('file_type_not_allowed');
    });

    it('refuses content of known size over the limit before storing anything', async () => {
      const file = await service({ maxSizeBytes: 10 }).createUploadFile({ content: Buffer.alloc(11), filename: 'a.bin' });
      expect(file).toMatchObject({ status: 'failed', errorCode: 'file_too_large' });
      expect(await keys(storage)).toEqual([]);
    });

    it('stops reading a stream past the limit: bytes read stay bounded, nothing stored, record failed', async () => {
      let produced = 0;
      const source = patternStream(200 * MiB, 1, (sent) => (produced = sent));
      const file = await service({ maxSizeBytes: MiB }).createUploadFile({ content: source, filename: 'big.bin' });
      expect(file).toMatchObject({ status: 'failed', errorCode: 'file_too_large' });
      expect(produced).toBeLessThan(2 * MiB);
      expect(source.destroyed).toBe(true);
      expect(await keys(storage)).toEqual([]);
      expect(await store.events()).toEqual([]);
      expect(await store.repository.getFile(file.id)).toMatchObject({ status: 'failed', errorCode: 'file_too_large' });
    });

    it('accepts exactly maxSizeBytes', async () => {
      const file = await service({ maxSizeBytes: MiB }).createUploadFile({ content: patternStream(MiB), filename: 'edge.bin' });
      expect(file).toMatchObject({ status: 'stored', sizeBytes: MiB });
    });

    it('rolls back when the emitter throws: no stored record, no event, object deleted', async () => {
      const broken: UnitOfWork = {
        transaction: (fn) =>
          store.transaction((tx) =>
            fn({
              repository: tx.repository,
              outbox: {
                emit: async () => {
                  throw new Error('outbox table is gone');
                },
              },
            }),
          ),
      };
      const error = await service({}, broken)
        .createUploadFile({ content: 'payload', filename: 'a.txt' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UploadFailedError);
      expect(error).toMatchObject({ code: 'E_UPLOAD_FAILED' });
      expect((error as Error & { cause: Error }).cause.message).toBe('outbox table is gone');
      const record = await store.repository.getFile((error as UploadFailedError).fileId);
      expect(record).toMatchObject({ status: 'failed', errorCode: 'storage_error' });
      expect(await keys(storage)).toEqual([]);
      expect(await store.events()).toEqual([]);
    });

    it('stores nothing when the record cannot be created', async () => {
      const source = patternStream(4 * MiB);
      const broken = new UploadService({
        storage,
        repository: {
          ...store.repository,
          createFile: async () => {
            throw new Error('database is down');
          },
        },
        unitOfWork: store,
      });
      const error = await broken.createUploadFile({ content: source, filename: 'a.bin' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UploadFailedError);
      expect((error as Error & { cause: Error }).cause.message).toBe('database is down');
      expect(source.destroyed).toBe(true);
      expect(await keys(storage)).toEqual([]);
    });

    it('fails cleanly when the source errors mid-stream: record failed, nothing stored, no event', async () => {
      const source = (async function* () {
        yield Buffer.alloc(64 * 1024);
        throw new Error('client went away');
      })();
      const error = await service()
        .createUploadFile({ content: source, filename: 'a.bin' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UploadFailedError);
      expect(await store.repository.getFile((error as UploadFailedError).fileId)).toMatchObject({ status: 'failed', errorCode: 'storage_error' });
      expect(await keys(storage)).toEqual([]);
      expect(await store.events()).toEqual([]);
    });

    it('throws StorageAbortedError on abort, and marks the record aborted', async () => {
      const controller = new AbortController();
      const source = patternStream(20 * MiB, 2, (sent) => {
        if (sent > MiB) controller.abort();
      });
      const error = await service()
        .createUploadFile({ content: source, filename: 'a.bin', signal: controller.signal })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageAbortedError);
      const [record] = await store.repository.findFiles({ createdBefore: new Date(T0.getTime() + 1), statuses: ['failed'], limit: 10 });
      expect(record).toMatchObject({ errorCode: 'aborted' });
      expect(await keys(storage)).toEqual([]);
    });

    it('aborts promptly while the source is stalled (a client that stopped sending), on memory and on disk', async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-stall-'));
      try {
        for (const target of [storage, new FileSystemStorage({ location: dir, baseUrl: 'https://files.example/' })]) {
          const controller = new AbortController();
          // Some bytes, then nothing: the stream never ends on its own.
          const source = new PassThrough();
          source.write(Buffer.alloc(256 * 1024));
          setTimeout(() => controller.abort(new Error('client went away')), 50);
          const uploads = new UploadService({ storage: target, repository: store.repository, unitOfWork: store, clock: () => now });
          const error = await uploads.createUploadFile({ content: source, filename: 'stalled.bin', signal: controller.signal }).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(StorageAbortedError);
          expect(source.destroyed).toBe(true);
        }
        expect(await keys(storage)).toEqual([]);
        // No file and no temp file (.doorito-….tmp) on disk: only the directories.
        expect((await readdir(dir, { recursive: true })).map(String).filter((name) => name.includes('.'))).toEqual([]);
        const failed = await store.repository.findFiles({ createdBefore: new Date(T0.getTime() + 1), statuses: ['failed'], limit: 10 });
        expect(failed.map((f) => f.errorCode)).toEqual(['aborted', 'aborted']);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('gives 100 parallel uploads of one filename 100 records and 100 distinct keys, each intact', async () => {
      const svc = service();
      const files = await Promise.all(
        Array.from({ length: 100 }, (_, i) => svc.createUploadFile({ content: patternStream(64 * 1024 + i, i), filename: 'same.bin' })),
      );
      expect(files.every((f) => f.status === 'stored')).toBe(true);
      expect(new Set(files.map((f) => f.id)).size).toBe(100);
      expect(new Set(files.map((f) => f.storageKey)).size).toBe(100);
      for (const file of files) expect(await sha256(await storage.open(file.storageKey))).toBe(file.sha256);
      expect(await store.events()).toHaveLength(100);
    });
  });

  describe('content types', () => {
    it('trusts the extension over a contradicting declared type', async () => {
      const file = await service().createUploadFile({ content: 'x', filename: 'photo.png', contentType: 'text/html' });
      expect(file.contentType).toBe('image/png');
    });

    it('uses a well-formed declared type only when the extension says nothing', async () => {
      expect((await service().createUploadFile({ content: 'x', filename: 'data', contentType: 'Application/Json; charset=utf-8' })).contentType).toBe(
        'application/json',
      );
      expect((await service().createUploadFile({ content: 'x', filename: 'data2', contentType: 'not a type' })).contentType).toBe(
        'application/octet-stream',
      );
    });

    it('stores inline-executable types as attachments, and their URLs force a download', async () => {
      const file = await service().createUploadFile({ content: '<script>alert(1)</script>', filename: 'page.html' });
      expect((await storage.stat(file.storageKey)).contentDisposition).toBe(
        `attachment; filename="page.html"; filename*=UTF-8''page.html`,
      );
      const [event] = await store.events();
      expect(new URL(String(event?.payload['url'])).searchParams.get('response-content-disposition')).toMatch(/^attachment;/u);
      const { url } = await service().getFileUrl(file.id);
      expect(new URL(url).searchParams.get('response-content-disposition')).toMatch(/^attachment;/u);
      const svg = await service().createUploadFile({ content: '<svg/>', filename: 'logo.svg' });
      expect((await storage.stat(svg.storageKey)).contentDisposition).toMatch(/^attachment;/u);
      const png = await service().createUploadFile({ content: 'x', filename: 'p.png' });
      expect((await storage.stat(png.storageKey)).contentDisposition).toBeUndefined();
    });
  });

  describe('status changes', () => {
    it('marks stored → processed only while stored', async () => {
      const file = await service().createUploadFile({ content: 'x', filename: 'a.txt' });
      expect((await service().markFileProcessed(file.id)).status).toBe('processed');
      await expect(service().markFileProcessed(file.id)).rejects.toBeInstanceOf(InvalidTransitionError);
      await expect(service().markFileProcessed('nope')).rejects.toBeInstanceOf(UploadNotFoundError);
    });

    it('marks a file failed with a code', async () => {
      const file = await service().createUploadFile({ content: 'x', filename: 'a.txt' });
      expect(await service().markFileFailed(file.id, { code: 'virus_found', message: 'EICAR' })).toMatchObject({
        status: 'failed',
        errorCode: 'virus_found',
        errorMessage: 'EICAR',
      });
    });

    it('deletes the object, then marks the record deleted; an object already gone is fine', async () => {
      const file = await service().createUploadFile({ content: 'x', filename: 'a.txt' });
      expect((await service().markFileDeleted(file.id)).status).toBe('deleted');
      expect(await storage.exists(file.storageKey)).toBe(false);
      expect((await service().markFileDeleted(file.id)).status).toBe('deleted');
      const other = await service().createUploadFile({ content: 'x', filename: 'b.txt' });
      await storage.delete(other.storageKey);
      expect((await service().markFileDeleted(other.id)).status).toBe('deleted');
      await expect(service().getFileUrl(file.id)).rejects.toBeInstanceOf(InvalidTransitionError);
    });
  });

  describe('batches', () => {
    it('returns the same batch for the same idempotency key', async () => {
      const a = await service().createBatch({ createdBy: 'alice', idempotencyKey: 'form-1' });
      const b = await service().createBatch({ createdBy: 'alice', idempotencyKey: 'form-1' });
      expect(b.id).toBe(a.id);
      expect((await service().createBatch({ idempotencyKey: 'form-2' })).id).not.toBe(a.id);
    });

    it('finalizes as complete, partial or failed', async () => {
      const svc = service({ allowedTypes: ['text/plain'] });
      const upload = (batchId: string, filename: string) => svc.createUploadFile({ content: 'x', filename, batchId });
      const complete = await svc.createBatch();
      await upload(complete.id, 'a.txt');
      await svc.markFileProcessed((await upload(complete.id, 'b.txt')).id);
      expect((await svc.finalizeBatch(complete.id)).status).toBe('complete');
      const partial = await svc.createBatch();
      await upload(partial.id, 'a.txt');
      await upload(partial.id, 'a.exe');
      expect((await svc.finalizeBatch(partial.id)).status).toBe('partial');
      const failed = await svc.createBatch();
      await upload(failed.id, 'a.exe');
      expect((await svc.finalizeBatch(failed.id)).status).toBe('failed');
      const empty = await svc.createBatch();
      expect((await svc.finalizeBatch(empty.id)).status).toBe('failed');
      await expect(svc.finalizeBatch('nope')).rejects.toBeInstanceOf(UploadNotFoundError);
    });
  });

  describe('expiry', () => {
    it('cleans up objects and records past the TTL, in batches, including stale uploading records', async () => {
      const svc = service({ ttlHours: 24 });
      const old = await Promise.all([1, 2, 3].map((i) => svc.createUploadFile({ content: `old ${i}`, filename: `old${i}.txt` })));
      // A crash mid-upload: an uploading record with an object under its key.
      await store.repository.createFile({ ...(old[0] as NonNullable<(typeof old)[0]>), id: 'crashed', status: 'uploading', storageKey: 'uploads/2026/11/crashed.bin' });
      await storage.save('uploads/2026/11/crashed.bin', 'partial');
      now = new Date(T0.getTime() + 23 * 3600_000);
      const fresh = await svc.createUploadFile({ content: 'fresh', filename: 'fresh.txt' });
      now = new Date(T0.getTime() + 25 * 3600_000);
      expect(await svc.cleanupExpiredUploadFiles({ batchSize: 3 })).toEqual({ deleted: 3, remaining: 1, failures: [] });
      expect(await svc.cleanupExpiredUploadFiles({ batchSize: 3 })).toEqual({ deleted: 1, remaining: 0, failures: [] });
      expect(await svc.cleanupExpiredUploadFiles()).toEqual({ deleted: 0, remaining: 0, failures: [] });
      expect(await keys(storage)).toEqual([fresh.storageKey]);
      expect(await store.repository.getFile('crashed')).toBeUndefined();
      for (const file of old) expect(await store.repository.getFile(file.id)).toBeUndefined();
      expect(await store.repository.getFile(fresh.id)).toMatchObject({ status: 'stored' });
    });

    it('goes page by page: one batched storage delete and one batched record delete per 1,000 files', async () => {
      const calls = { deleteMany: 0, deleteFiles: 0, keys: 0 };
      const original = storage.deleteMany.bind(storage);
      storage.deleteMany = async (keysToDelete, options) => {
        calls.deleteMany += 1;
        const all = [...keysToDelete];
        calls.keys += all.length;
        return original(all, options);
      };
      const repository = { ...store.repository };
      repository.deleteFiles = async (ids) => {
        calls.deleteFiles += 1;
        return store.repository.deleteFiles(ids);
      };
      const svc = new UploadService({ storage, repository, unitOfWork: store, clock: () => now, ttlHours: 24 });
      for (let i = 0; i < 2100; i += 1) await svc.createUploadFile({ content: `file ${i}`, filename: `f${i}.txt` });
      now = new Date(T0.getTime() + 25 * 3600_000);
      expect(await svc.cleanupExpiredUploadFiles({ batchSize: 2500 })).toEqual({ deleted: 2100, remaining: 0, failures: [] });
      expect(calls).toEqual({ deleteMany: 3, deleteFiles: 3, keys: 2100 });
      expect(await keys(storage)).toEqual([]);
    });

    it('keeps and reports a file whose object cannot be deleted, deletes the rest, and retries it on the next call', async () => {
      const svc = service({ ttlHours: 24 });
      const files = await Promise.all([1, 2, 3].map((i) => svc.createUploadFile({ content: `old ${i}`, filename: `old${i}.txt` })));
      const stuck = files[1] as (typeof files)[number];
      const refusal = new StoragePermissionError(`Access denied deleting "${stuck.storageKey}".`, { key: stuck.storageKey });
      let refuse = true;
      const original = storage.deleteMany.bind(storage);
      storage.deleteMany = async (keysToDelete, options) => {
        const all = [...keysToDelete];
        await original(all.filter((key) => !(refuse && key === stuck.storageKey)), options);
        if (refuse && all.includes(stuck.storageKey)) throw new StorageDeleteError([{ key: stuck.storageKey, error: refusal }]);
      };
      now = new Date(T0.getTime() + 25 * 3600_000);
      const report = await svc.cleanupExpiredUploadFiles();
      expect(report).toEqual({ deleted: 2, remaining: 1, failures: [{ fileId: stuck.id, key: stuck.storageKey, error: refusal }] });
      expect(await keys(storage)).toEqual([stuck.storageKey]);
      expect(await store.repository.getFile(stuck.id)).toMatchObject({ status: 'stored' });
      refuse = false;
      expect(await svc.cleanupExpiredUploadFiles()).toEqual({ deleted: 1, remaining: 0, failures: [] });
      expect(await keys(storage)).toEqual([]);
    });

    it('never deletes an object that another record owns when sweeping an expired failed record', async () => {
      const svc = service({ ttlHours: 24 });
      // An upload that failed at T0 names its key, but a failed record holds nothing.
      await store.repository.createFile({
        id: 'failed-earlier',
        storageKey: 'uploads/2026/11/shared.txt',
        originalFilename: 'shared.txt',
        contentType: 'text/plain',
        sizeBytes: 0,
        sha256: '',
        metadata: {},
        status: 'failed',
        createdAt: T0,
        updatedAt: T0,
      });
      // Later, someone else uploads the same name and gets that key.
      now = new Date(T0.getTime() + 23 * 3600_000);
      const owner = await svc.createUploadFile({ content: 'keep me', filename: 'shared.txt' });
      expect(owner.storageKey).toBe('uploads/2026/11/shared.txt');
      now = new Date(T0.getTime() + 25 * 3600_000);
      expect(await svc.cleanupExpiredUploadFiles()).toEqual({ deleted: 1, remaining: 0, failures: [] });
      expect(await store.repository.getFile('failed-earlier')).toBeUndefined();
      expect(await text(await storage.open(owner.storageKey))).toBe('keep me');
    });

    it('never gives a new upload the key a stale uploading record holds', async () => {
      const svc = service({ ttlHours: 24 });
      // A crash mid-upload at T0: the record holds its key, and may have stored bytes under it.
      await store.repository.createFile({
        id: 'crashed',
        storageKey: 'uploads/2026/11/shared.txt',
        originalFilename: 'shared.txt',
        contentType: 'text/plain',
        sizeBytes: 0,
        sha256: '',
        metadata: {},
        status: 'uploading',
        createdAt: T0,
        updatedAt: T0,
      });
      await storage.save('uploads/2026/11/shared.txt', 'what the crashed upload stored');
      now = new Date(T0.getTime() + 23 * 3600_000);
      const owner = await svc.createUploadFile({ content: 'keep me', filename: 'shared.txt' });
      expect(owner.storageKey).toMatch(/^uploads\/2026\/11\/shared_[a-zA-Z0-9]{7}\.txt$/u);
      now = new Date(T0.getTime() + 25 * 3600_000);
      expect(await svc.cleanupExpiredUploadFiles()).toEqual({ deleted: 1, remaining: 0, failures: [] });
      expect(await storage.exists('uploads/2026/11/shared.txt')).toBe(false);
      expect(await text(await storage.open(owner.storageKey))).toBe('keep me');
    });

    it('emits file.expiring once per file, however often it runs', async () => {
      const svc = service({ ttlHours: 24, expiryNotifyHours: 1 });
      const soon = await svc.createUploadFile({ content: 'soon', filename: 'soon.txt' });
      now = new Date(T0.getTime() + 30 * 60_000);
      await svc.createUploadFile({ content: 'later', filename: 'later.txt' });
      now = new Date(T0.getTime() + 23 * 3600_000 + 10 * 60_000);
      expect(await svc.notifyExpiringFiles()).toEqual({ notified: 1, skipped: 0 });
      expect(await svc.notifyExpiringFiles()).toEqual({ notified: 0, skipped: 1 });
      const expiring = (await store.events()).filter((e) => e.eventType === 'file.expiring');
      expect(expiring).toHaveLength(1);
      expect(expiring[0]?.payload).toMatchObject({ file_id: soon.id, sha256: soon.sha256, expires_at: '2026-11-28T10:00:00.000Z' });
    });
  });
});

describe('MemoryUploadStore', () => {
  it('reports a duplicate event instead of doubling it', async () => {
    const store = new MemoryUploadStore();
    const event = { aggregateType: 'UploadFile', aggregateId: 'f1', eventType: 'file.stored', payload: { a: 1 } };
    expect((await store.outbox.emit(event)).duplicate).toBe(false);
    const again = await store.outbox.emit({ ...event, payload: { a: 2 } });
    expect(again.duplicate).toBe(true);
    expect(again.event.payload).toEqual({ a: 1 });
    expect((await store.outbox.emit({ ...event, eventType: 'file.expiring' })).duplicate).toBe(false);
    expect(await store.events()).toHaveLength(2);
  });

  it('rolls a transaction back when it throws, and commits when it resolves', async () => {
    const store = new MemoryUploadStore();
    const batch = { id: 'b1', status: 'init' as const, idempotencyKey: 'k', createdAt: T0, updatedAt: T0 };
    await expect(
      store.transaction(async (tx) => {
        await tx.repository.createBatch(batch);
        await tx.outbox.emit({ aggregateType: 'UploadBatch', aggregateId: 'b1', eventType: 'batch.created', payload: {} });
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.repository.getBatch('b1')).toBeUndefined();
    expect(await store.events()).toEqual([]);
    await store.transaction(async (tx) => {
      await tx.repository.createBatch(batch);
    });
    expect(await store.repository.getBatch('b1')).toMatchObject({ id: 'b1' });
  });

  it('updates with compare-and-set on status', async () => {
    const store = new MemoryUploadStore();
    const file = {
      id: 'f',
      storageKey: 'k',
      originalFilename: 'k',
      contentType: 'text/plain',
      sizeBytes: 1,
      sha256: '',
      metadata: {},
      status: 'stored' as const,
      createdAt: T0,
      updatedAt: T0,
    };
    await store.repository.createFile(file);
    expect(await store.repository.updateFile('f', { status: 'processed' }, { expectedStatus: 'uploading' })).toBeUndefined();
    expect(await store.repository.updateFile('f', { status: 'processed' }, { expectedStatus: 'stored' })).toMatchObject({ status: 'processed' });
    expect(await store.repository.updateFile('f', { status: 'processed' }, { expectedStatus: 'stored' })).toBeUndefined();
  });
});
