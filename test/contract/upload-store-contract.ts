/**
 * One conformance suite for every implementation of the upload ports (repository, outbox
 * emitter, unit of work): the in-memory store and the SQL stores run the same tests.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OutboxEmitter, OutboxEvent, OutboxStore, UnitOfWork, UploadBatch, UploadFile, UploadRepository } from '../../src/index.js';
import { outboxStoreContract } from './outbox-store-contract.js';

/** What every upload store offers: the UploadService's ports, the relay's, and `events()`. */
export type UploadStore = UnitOfWork &
  OutboxStore & {
    repository: UploadRepository;
    outbox: OutboxEmitter;
    events(): Promise<OutboxEvent[]>;
  };

interface UploadStoreFixture {
  repository: UploadRepository;
  outbox: OutboxEmitter;
  unitOfWork: UnitOfWork;
  /** The relay's view of the same outbox. */
  outboxStore: OutboxStore;
  events(): Promise<OutboxEvent[]>;
  cleanup(): Promise<void>;
}

const T0 = new Date('2026-11-27T10:00:00.000Z');
const at = (hours: number) => new Date(T0.getTime() + hours * 3600_000);

export function fileOf(overrides: Partial<UploadFile> = {}): UploadFile {
  return {
    id: randomUUID(),
    storageKey: `uploads/2026/11/${randomUUID()}.txt`,
    originalFilename: 'Report (final).txt',
    contentType: 'text/plain',
    sizeBytes: 0,
    sha256: '',
    metadata: { source: 'contract' },
    status: 'uploading',
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

/** `open` gives a fresh, empty store for each test, and what to do after it. */
export function uploadStoreContract(name: string, open: () => Promise<{ store: UploadStore; cleanup?: () => Promise<void> }>): void {
  describe(`Upload store contract: ${name}`, () => {
    let fx: UploadStoreFixture;
    beforeEach(async () => {
      const { store, cleanup = async () => undefined } = await open();
      fx = { repository: store.repository, outbox: store.outbox, unitOfWork: store, outboxStore: store, events: () => store.events(), cleanup };
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it('creates and reads a file with every field intact', async () => {
      const file = fileOf({ uploadedBy: 'alice', errorCode: 'x', errorMessage: 'y', sizeBytes: 12, sha256: 'ab' });
      await fx.repository.createFile(file);
      expect(await fx.repository.getFile(file.id)).toEqual(file);
      expect(await fx.repository.getFile(randomUUID())).toBeUndefined();
    });

    it('updates with compare-and-set on status', async () => {
      const file = fileOf();
      await fx.repository.createFile(file);
      expect(await fx.repository.updateFile(file.id, { status: 'processed' }, { expectedStatus: 'stored' })).toBeUndefined();
      const stored = await fx.repository.updateFile(
        file.id,
        { status: 'stored', sha256: 'ff', sizeBytes: 3, storageKey: 'k/final.txt' },
        { expectedStatus: 'uploading', now: at(1) },
      );
      expect(stored).toMatchObject({ status: 'stored', sha256: 'ff', sizeBytes: 3, storageKey: 'k/final.txt', updatedAt: at(1) });
      expect(await fx.repository.updateFile(file.id, { status: 'stored' }, { expectedStatus: 'uploading' })).toBeUndefined();
      expect(await fx.repository.updateFile(randomUUID(), { status: 'failed' })).toBeUndefined();
      expect(await fx.repository.getFile(file.id)).toMatchObject({ status: 'stored' });
    });

    it('lets exactly one of many concurrent compare-and-set updates win', async () => {
      const file = fileOf({ status: 'stored' });
      await fx.repository.createFile(file);
      const results = await Promise.all(
        Array.from({ length: 10 }, () => fx.repository.updateFile(file.id, { status: 'processed' }, { expectedStatus: 'stored' })),
      );
      expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    });

    it('deletes files, and lists a batch, by key and by age', async () => {
      const batchId = randomUUID();
      const a = fileOf({ batchId, createdAt: at(0), status: 'stored' });
      const b = fileOf({ batchId, createdAt: at(1), status: 'failed' });
      const c = fileOf({ createdAt: at(2), status: 'stored', storageKey: a.storageKey });
      for (const f of [a, b, c]) await fx.repository.createFile(f);
      expect((await fx.repository.listBatchFiles(batchId)).map((f) => f.id).sort()).toEqual([a.id, b.id].sort());
      expect((await fx.repository.findFilesByStorageKey(a.storageKey)).map((f) => f.id).sort()).toEqual([a.id, c.id].sort());
      const query = { createdBefore: at(2), statuses: ['stored', 'failed'] as UploadFile['status'][] };
      expect((await fx.repository.findFiles({ ...query, limit: 10 })).map((f) => f.id)).toEqual([a.id, b.id]);
      expect((await fx.repository.findFiles({ ...query, limit: 1 })).map((f) => f.id)).toEqual([a.id]);
      expect((await fx.repository.findFiles({ ...query, createdFrom: at(1), limit: 10 })).map((f) => f.id)).toEqual([b.id]);
      expect(await fx.repository.countFiles({ ...query, statuses: ['stored'] })).toBe(1);
      await fx.repository.deleteFile(a.id);
      expect(await fx.repository.getFile(a.id)).toBeUndefined();
      expect(await fx.repository.countFiles(query)).toBe(1);
    });

    it('pages through files newest first, filtered by status, without gaps or repeats', async () => {
      // Two files share an instant: the id breaks the tie, and the cursor must not skip either.
      const files = [0, 1, 1, 2, 3].map((h, i) => fileOf({ createdAt: at(h), status: i === 2 ? 'deleted' : 'stored' }));
      for (const f of files) await fx.repository.createFile(f);
      const expected = [...files]
        .filter((f) => f.status !== 'deleted')
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1))
        .map((f) => f.id);
      const seen: string[] = [];
      let after: UploadFile | undefined;
      for (;;) {
        const page = await fx.repository.listFiles({ limit: 2, statuses: ['stored'], ...(after === undefined ? {} : { after }) });
        if (page.length === 0) break;
        seen.push(...page.map((f) => f.id));
        after = page.at(-1);
      }
      expect(seen).toEqual(expected);
      expect((await fx.repository.listFiles({ limit: 10 })).length).toBe(5);
      expect(await fx.repository.listFiles({ limit: 10, statuses: [] })).toEqual([]);
    });

    it('returns the existing batch for the same idempotency key, and updates status', async () => {
      const key = `form-${randomUUID()}`;
      const batch: UploadBatch = { id: randomUUID(), createdBy: 'alice', status: 'init', idempotencyKey: key, createdAt: T0, updatedAt: T0 };
      expect(await fx.repository.createBatch(batch)).toEqual(batch);
      expect(await fx.repository.createBatch({ ...batch, id: randomUUID() })).toEqual(batch);
      expect(await fx.repository.getBatch(batch.id)).toEqual(batch);
      expect(await fx.repository.updateBatch(batch.id, { status: 'complete' }, at(1))).toMatchObject({ status: 'complete', updatedAt: at(1) });
      expect(await fx.repository.updateBatch(randomUUID(), { status: 'failed' })).toBeUndefined();
    });

    it('keeps one event per (event type, idempotency key) and reports the duplicate', async () => {
      const aggregateId = randomUUID();
      const event = { aggregateType: 'UploadFile', aggregateId, eventType: 'file.stored', payload: { url: 'a', n: 1 } };
      const first = await fx.outbox.emit(event);
      expect(first).toMatchObject({ duplicate: false, event: { idempotencyKey: `UploadFile:${aggregateId}`, payload: { url: 'a', n: 1 } } });
      const again = await fx.outbox.emit({ ...event, payload: { url: 'b', n: 2 } });
      expect(again.duplicate).toBe(true);
      expect(again.event.id).toBe(first.event.id);
      expect(again.event.payload).toEqual({ url: 'a', n: 1 });
      expect((await fx.outbox.emit({ ...event, eventType: 'file.expiring' })).duplicate).toBe(false);
      expect((await fx.outbox.emit({ ...event, idempotencyKey: 'custom' })).duplicate).toBe(false);
      expect((await fx.events()).filter((e) => e.aggregateId === aggregateId)).toHaveLength(3);
    });

    it('commits a transaction when it resolves', async () => {
      const file = fileOf();
      await fx.repository.createFile(file);
      await fx.unitOfWork.transaction(async (tx) => {
        await tx.repository.updateFile(file.id, { status: 'stored' }, { expectedStatus: 'uploading' });
        await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: file.id, eventType: 'file.stored', payload: {} });
      });
      expect(await fx.repository.getFile(file.id)).toMatchObject({ status: 'stored' });
      expect((await fx.events()).some((e) => e.aggregateId === file.id)).toBe(true);
    });

    it('rolls a transaction back when it throws: neither the update nor the event remains', async () => {
      const file = fileOf();
      await fx.repository.createFile(file);
      await expect(
        fx.unitOfWork.transaction(async (tx) => {
          await tx.repository.updateFile(file.id, { status: 'stored' }, { expectedStatus: 'uploading' });
          await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: file.id, eventType: 'file.stored', payload: {} });
          throw new Error('after the update');
        }),
      ).rejects.toThrow('after the update');
      expect(await fx.repository.getFile(file.id)).toMatchObject({ status: 'uploading' });
      expect((await fx.events()).some((e) => e.aggregateId === file.id)).toBe(false);
    });

    outboxStoreContract(() => fx);
  });
}
