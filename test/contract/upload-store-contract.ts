/**
 * One conformance suite for every implementation of the upload ports (repository, outbox
 * emitter, unit of work): the in-memory store and the SQL stores run the same tests.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  isStorageKeyTakenError,
  StorageKeyTakenError,
  type DirectUploadState,
  type OutboxEmitter,
  type OutboxEvent,
  type OutboxStore,
  type UnitOfWork,
  type UploadBatch,
  type UploadFile,
  type UploadRepository,
} from '../../src/index.js';
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
      // Sharing a's key: c is not live (two live files never share one).
      const c = fileOf({ createdAt: at(2), status: 'deleted', storageKey: a.storageKey });
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

    describe('storage keys: a live file holds its key alone', () => {
      const key = () => `uploads/2026/11/${randomUUID()}.txt`;
      /** The error `promise` rejects with (or undefined when it resolves). */
      const rejection = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);
      const expectKeyTaken = (error: unknown, taken: string) => {
        expect(error).toBeInstanceOf(StorageKeyTakenError);
        expect(isStorageKeyTakenError(error)).toBe(true);
        expect(error).toMatchObject({ name: 'StorageKeyTakenError', code: 'E_KEY_TAKEN', key: taken });
        expect((error as Error).message).toContain(`"${taken}"`);
        expect((error as Error).message).toMatch(/another live upload/u);
      };

      it('refuses to create a live file with a key another live file holds, and stores nothing', async () => {
        const k = key();
        const holder = fileOf({ storageKey: k, status: 'stored' });
        await fx.repository.createFile(holder);
        for (const status of ['uploading', 'stored', 'processed'] as const) {
          const late = fileOf({ storageKey: k, status });
          expectKeyTaken(await rejection(fx.repository.createFile(late)), k);
          expect(await fx.repository.getFile(late.id)).toBeUndefined();
        }
        expect(await fx.repository.findFilesByStorageKey(k)).toEqual([holder]);
      });

      it('lets failed and deleted files share a key with a live one, and never counts an empty key', async () => {
        const k = key();
        const files = [
          fileOf({ storageKey: k, status: 'failed', errorCode: 'aborted' }),
          fileOf({ storageKey: k, status: 'deleted' }),
          fileOf({ storageKey: k, status: 'uploading' }),
          fileOf({ storageKey: k, status: 'failed', errorCode: 'storage_error' }),
          // Refused before a key was chosen: '' holds nothing, so any number of live files may have it.
          fileOf({ storageKey: '', status: 'uploading' }),
          fileOf({ storageKey: '', status: 'stored' }),
        ];
        for (const f of files) await fx.repository.createFile(f);
        for (const f of files) expect(await fx.repository.getFile(f.id)).toEqual(f);
        expect(await fx.repository.findLiveStorageKeys([k, ''])).toEqual(new Set([k]));
        // Claiming '' releases a key and always succeeds for a live file.
        expect(await fx.repository.claimStorageKey(files[2]!.id, '')).toBe(true);
        expect(await fx.repository.findLiveStorageKeys([k])).toEqual(new Set());
      });

      it('claims a free key, re-claims its own, and refuses a held key, a file that is not live, and a missing file', async () => {
        const k = key();
        const a = fileOf();
        const b = fileOf();
        const failed = fileOf({ status: 'failed', errorCode: 'aborted' });
        for (const f of [a, b, failed]) await fx.repository.createFile(f);

        expect(await fx.repository.claimStorageKey(a.id, k, at(1))).toBe(true);
        expect(await fx.repository.getFile(a.id)).toEqual({ ...a, storageKey: k, updatedAt: at(1) });
        expect(await fx.repository.claimStorageKey(a.id, k, at(2))).toBe(true);
        expect(await fx.repository.getFile(a.id)).toMatchObject({ storageKey: k, updatedAt: at(2) });

        expect(await fx.repository.claimStorageKey(b.id, k, at(3))).toBe(false);
        expect(await fx.repository.getFile(b.id)).toEqual(b);
        expect(await fx.repository.claimStorageKey(failed.id, key(), at(3))).toBe(false);
        expect(await fx.repository.getFile(failed.id)).toEqual(failed);
        const free = key();
        expect(await fx.repository.claimStorageKey(randomUUID(), free)).toBe(false);
        expect(await fx.repository.claimStorageKey('not-a-file-id', free)).toBe(false);
        expect(await fx.repository.findLiveStorageKeys([k, free])).toEqual(new Set([k]));
      });

      it('releases a key when its file claims another, stops being live, or is deleted', async () => {
        const [k1, k2, k3] = [key(), key(), key()];
        const a = fileOf({ storageKey: k1 });
        const d = fileOf({ storageKey: k3, status: 'stored' });
        const others = [fileOf(), fileOf(), fileOf()];
        for (const f of [a, d, ...others]) await fx.repository.createFile(f);

        expect(await fx.repository.claimStorageKey(a.id, k2)).toBe(true);
        expect(await fx.repository.claimStorageKey(others[0]!.id, k1)).toBe(true);

        expect(await fx.repository.updateFile(a.id, { status: 'failed', errorCode: 'aborted' })).toMatchObject({ storageKey: k2 });
        expect(await fx.repository.claimStorageKey(others[1]!.id, k2)).toBe(true);

        await fx.repository.deleteFile(d.id);
        const next = fileOf({ storageKey: k3, status: 'stored' });
        await fx.repository.createFile(next);
        expect(await fx.repository.getFile(next.id)).toEqual(next);
        expect(await fx.repository.claimStorageKey(others[2]!.id, k3)).toBe(false);
      });

      it('refuses an update that would make two live files share a key, and changes nothing', async () => {
        const k = key();
        const holder = fileOf({ storageKey: k, status: 'stored' });
        const uploading = fileOf();
        const failed = fileOf({ storageKey: k, status: 'failed', errorCode: 'aborted' });
        for (const f of [holder, uploading, failed]) await fx.repository.createFile(f);

        // A new key, as the move to stored after de-duplication would set it.
        const patch = { status: 'stored', storageKey: k, sha256: 'ff', sizeBytes: 3 } as const;
        expectKeyTaken(await rejection(fx.repository.updateFile(uploading.id, patch, { expectedStatus: 'uploading', now: at(1) })), k);
        expect(await fx.repository.getFile(uploading.id)).toEqual(uploading);
        expectKeyTaken(await rejection(fx.repository.updateFile(uploading.id, { storageKey: k })), k);
        // A status back to live, keeping a key that is held meanwhile.
        expectKeyTaken(await rejection(fx.repository.updateFile(failed.id, { status: 'uploading' }, { now: at(1) })), k);
        expect(await fx.repository.getFile(failed.id)).toEqual(failed);
        expect(await fx.repository.getFile(holder.id)).toEqual(holder);

        // Neither a patch that leaves the file not live nor a compare-and-set that does not apply meets the key.
        expect(await fx.repository.updateFile(uploading.id, { storageKey: k, status: 'failed' })).toMatchObject({ storageKey: k, status: 'failed' });
        expect(await fx.repository.updateFile(failed.id, { status: 'uploading' }, { expectedStatus: 'stored' })).toBeUndefined();
        expect(await fx.repository.updateFile(holder.id, { status: 'processed', metadata: { n: '1' } })).toMatchObject({ storageKey: k, status: 'processed' });
      });

      it('tells which of many keys live files hold', async () => {
        const keys = Array.from({ length: 6 }, key);
        const statuses = ['uploading', 'stored', 'processed', 'failed', 'deleted'] as const;
        for (const [i, status] of statuses.entries()) await fx.repository.createFile(fileOf({ storageKey: keys[i]!, status }));
        // More keys than SQLite binds parameters (999 by default in older builds), and repeats.
        const asked = [...Array.from({ length: 1500 }, key), ...keys, keys[0]!, '', 'uploads/missing.txt'];
        expect(await fx.repository.findLiveStorageKeys(asked)).toEqual(new Set(keys.slice(0, 3)));
        expect(await fx.repository.findLiveStorageKeys([])).toEqual(new Set());
      });

      it('keeps a transaction usable after a refused claim or a taken key: later statements still commit', async () => {
        const k = key();
        const holder = fileOf({ storageKey: k, status: 'stored' });
        const mover = fileOf();
        for (const f of [holder, mover]) await fx.repository.createFile(f);
        const late = fileOf({ storageKey: k });
        const free = key();
        await fx.unitOfWork.transaction(async (tx) => {
          expect(await tx.repository.claimStorageKey(mover.id, k)).toBe(false);
          expectKeyTaken(await rejection(tx.repository.createFile(late)), k);
          expectKeyTaken(await rejection(tx.repository.updateFile(mover.id, { storageKey: k })), k);
          // Statements side by side with a refused claim are not undone with it (on Postgres, the
          // update must not land between the claim's SAVEPOINT and its ROLLBACK TO SAVEPOINT).
          const [claimed, updated] = await Promise.all([
            tx.repository.claimStorageKey(mover.id, k),
            (async () => {
              await tx.repository.getFile(holder.id);
              return tx.repository.updateFile(mover.id, { metadata: { step: 'beside' } });
            })(),
          ]);
          expect(claimed).toBe(false);
          expect(updated).toMatchObject({ metadata: { step: 'beside' } });
          expect(await tx.repository.claimStorageKey(mover.id, free)).toBe(true);
          await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: mover.id, eventType: 'file.stored', payload: {} });
        });
        expect(await fx.repository.getFile(mover.id)).toMatchObject({ storageKey: free, metadata: { step: 'beside' } });
        expect(await fx.repository.getFile(late.id)).toBeUndefined();
        expect(await fx.repository.getFile(holder.id)).toEqual(holder);
        expect((await fx.events()).some((e) => e.aggregateId === mover.id)).toBe(true);
      });

      it('rolls a claim back with its transaction: the key is free again', async () => {
        const k = key();
        const a = fileOf();
        const b = fileOf();
        for (const f of [a, b]) await fx.repository.createFile(f);
        await expect(
          fx.unitOfWork.transaction(async (tx) => {
            expect(await tx.repository.claimStorageKey(a.id, k)).toBe(true);
            expect(await tx.repository.findLiveStorageKeys([k, a.storageKey])).toEqual(new Set([k]));
            throw new Error('after the claim');
          }),
        ).rejects.toThrow('after the claim');
        expect(await fx.repository.getFile(a.id)).toEqual(a);
        expect(await fx.repository.findLiveStorageKeys([k, a.storageKey])).toEqual(new Set([a.storageKey]));
        expect(await fx.repository.claimStorageKey(b.id, k)).toBe(true);
      });

      it('gives a key to exactly one of 20 files claiming it at once, on their own and in concurrent transactions', async () => {
        const files = Array.from({ length: 20 }, () => fileOf());
        for (const f of files) await fx.repository.createFile(f);
        const check = async (k: string, results: boolean[]) => {
          expect(results.filter(Boolean)).toHaveLength(1);
          const winner = files[results.indexOf(true)]!;
          expect(await fx.repository.getFile(winner.id)).toMatchObject({ storageKey: k });
          const holders = (await fx.repository.findFilesByStorageKey(k)).map((f) => f.id);
          expect(holders).toEqual([winner.id]);
        };

        const k1 = key();
        await check(k1, await Promise.all(files.map((f) => fx.repository.claimStorageKey(f.id, k1))));

        // Each claim holds its transaction open a while, so they overlap where the store allows it.
        const k2 = key();
        const inTransactions = await Promise.all(
          files.map((f) =>
            fx.unitOfWork.transaction(async (tx) => {
              const claimed = await tx.repository.claimStorageKey(f.id, k2);
              await new Promise((resolve) => setTimeout(resolve, 20));
              return claimed;
            }),
          ),
        );
        await check(k2, inTransactions);
      });
    });

    outboxStoreContract(() => fx);

    describe('direct uploads: the directUpload state round-trips', () => {
      /** Every member set, the instant with milliseconds. */
      const multipart = (): DirectUploadState => ({
        method: 'multipart',
        size: 5 * 1024 ** 4,
        expiresAt: new Date('2026-11-27T11:00:00.123Z'),
        md5: '1B2M2Y8AsgTpgAmY7PhCfg==',
        sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
        uploadId: 'VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRz',
        partSize: 64 * 1024 ** 2,
      });

      it('creates and reads a file with its direct upload exactly as written, and one without it with no directUpload at all', async () => {
        const full = fileOf({ directUpload: multipart() });
        const bare = fileOf({ directUpload: { method: 'put', size: 12, expiresAt: at(1) } });
        const none = fileOf();
        for (const f of [full, bare, none]) await fx.repository.createFile(f);
        // toStrictEqual: a member present as undefined would fail, as would a string for the Date.
        expect(await fx.repository.getFile(full.id)).toStrictEqual(full);
        expect(await fx.repository.getFile(bare.id)).toStrictEqual(bare);
        const read = await fx.repository.getFile(none.id);
        expect(read).toStrictEqual(none);
        expect(read).not.toHaveProperty('directUpload');
        expect((await fx.repository.getFile(full.id))?.directUpload?.expiresAt).toBeInstanceOf(Date);
      });

      it('sets it with updateFile under compare-and-set on status, and keeps it through other patches', async () => {
        const started = multipart();
        delete started.uploadId;
        const file = fileOf({ directUpload: started });
        await fx.repository.createFile(file);
        const withId = { ...started, uploadId: 'upload-id-from-the-storage' };
        expect(await fx.repository.updateFile(file.id, { directUpload: withId }, { expectedStatus: 'stored', now: at(1) })).toBeUndefined();
        expect(await fx.repository.getFile(file.id)).toStrictEqual(file);

        const updated = await fx.repository.updateFile(file.id, { directUpload: withId }, { expectedStatus: 'uploading', now: at(1) });
        expect(updated).toStrictEqual({ ...file, directUpload: withId, updatedAt: at(1) });
        expect(await fx.repository.getFile(file.id)).toStrictEqual(updated);
        const stored = await fx.repository.updateFile(file.id, { status: 'stored', sizeBytes: withId.size }, { expectedStatus: 'uploading', now: at(2) });
        expect(stored).toStrictEqual({ ...file, directUpload: withId, status: 'stored', sizeBytes: withId.size, updatedAt: at(2) });

        // A file created without one gets one.
        const later = fileOf();
        await fx.repository.createFile(later);
        const put: DirectUploadState = { method: 'put', size: 3, expiresAt: at(3), sha256: 'ab' };
        expect(await fx.repository.updateFile(later.id, { directUpload: put }, { expectedStatus: 'uploading', now: at(1) })).toStrictEqual({
          ...later,
          directUpload: put,
          updatedAt: at(1),
        });
      });

      it('lists and finds files with their direct upload, and rolls a patch of it back with its transaction', async () => {
        const batchId = randomUUID();
        const file = fileOf({ batchId, directUpload: multipart() });
        const other = fileOf({ batchId, createdAt: at(1), directUpload: { method: 'post', size: 7, expiresAt: at(2) } });
        for (const f of [file, other]) await fx.repository.createFile(f);
        expect(await fx.repository.listFiles({ limit: 10 })).toStrictEqual([other, file]);
        expect(await fx.repository.listFiles({ limit: 10, after: other })).toStrictEqual([file]);
        expect(await fx.repository.findFiles({ createdBefore: at(5), statuses: ['uploading'], limit: 10 })).toStrictEqual([file, other]);
        expect(await fx.repository.listBatchFiles(batchId)).toStrictEqual([file, other]);
        expect(await fx.repository.findFilesByStorageKey(file.storageKey)).toStrictEqual([file]);

        await expect(
          fx.unitOfWork.transaction(async (tx) => {
            await tx.repository.updateFile(file.id, { directUpload: { ...multipart(), uploadId: 'replaced' } }, { expectedStatus: 'uploading' });
            expect((await tx.repository.getFile(file.id))?.directUpload?.uploadId).toBe('replaced');
            throw new Error('after the patch');
          }),
        ).rejects.toThrow('after the patch');
        expect(await fx.repository.getFile(file.id)).toStrictEqual(file);
      });

      it('keeps what callers pass and get apart from the stored record', async () => {
        const file = fileOf({ directUpload: multipart() });
        const written = structuredClone(file);
        await fx.repository.createFile(file);
        file.directUpload!.expiresAt.setTime(0);
        file.directUpload!.uploadId = 'changed';
        expect(await fx.repository.getFile(file.id)).toStrictEqual(written);
        const read = await fx.repository.getFile(file.id);
        read!.directUpload!.expiresAt.setTime(0);
        delete read!.directUpload!.md5;
        (await fx.repository.listFiles({ limit: 10 }))[0]!.directUpload!.size = 1;
        (await fx.repository.findFiles({ createdBefore: at(5), statuses: ['uploading'], limit: 10 }))[0]!.directUpload!.partSize = 1;
        expect(await fx.repository.getFile(file.id)).toStrictEqual(written);

        const patch = { directUpload: { ...multipart(), partSize: 8 * 1024 ** 2 } };
        const updated = await fx.repository.updateFile(file.id, patch, { now: at(1) });
        patch.directUpload.expiresAt.setTime(0);
        updated!.directUpload!.uploadId = 'changed';
        expect(await fx.repository.getFile(file.id)).toStrictEqual({ ...written, directUpload: { ...multipart(), partSize: 8 * 1024 ** 2 }, updatedAt: at(1) });
      });
    });

    describe('batched maintenance: deleteFiles and failFiles', () => {
      const key = () => `uploads/2026/11/${randomUUID()}.txt`;
      /** Ids no file has: more than SQLite binds parameters (999 by default in older builds). */
      const missing = () => Array.from({ length: 1500 }, () => randomUUID());

      it('deletes the files that exist among many ids, counts each once, and releases their keys', async () => {
        const a = fileOf({ status: 'stored' });
        const b = fileOf({ status: 'uploading' });
        const failed = fileOf({ status: 'failed', errorCode: 'aborted' });
        const kept = fileOf({ status: 'stored' });
        for (const f of [a, b, failed, kept]) await fx.repository.createFile(f);

        expect(await fx.repository.deleteFiles([...missing(), a.id, b.id, failed.id, a.id])).toBe(3);
        for (const f of [a, b, failed]) expect(await fx.repository.getFile(f.id)).toBeUndefined();
        expect(await fx.repository.getFile(kept.id)).toEqual(kept);
        expect(await fx.repository.findLiveStorageKeys([a.storageKey, b.storageKey, kept.storageKey])).toEqual(new Set([kept.storageKey]));
        // The keys are free: a new live file takes one, another file claims the other.
        const next = fileOf({ storageKey: a.storageKey, status: 'stored' });
        await fx.repository.createFile(next);
        expect(await fx.repository.getFile(next.id)).toEqual(next);
        expect(await fx.repository.claimStorageKey(kept.id, b.storageKey)).toBe(true);
        expect(await fx.repository.deleteFiles([a.id, randomUUID()])).toBe(0);
      });

      it('fails only the files with an expected status, returns their ids, and releases their keys', async () => {
        const error = { code: 'interrupted', message: 'The upload never finished.' };
        const uploading = [fileOf({ status: 'uploading' }), fileOf({ status: 'uploading', metadata: { n: '2' } })];
        const stored = fileOf({ status: 'stored' });
        const deleted = fileOf({ status: 'deleted' });
        for (const f of [...uploading, stored, deleted]) await fx.repository.createFile(f);

        const changed = await fx.repository.failFiles([...missing(), ...uploading.map((f) => f.id), stored.id, deleted.id], error, {
          expectedStatuses: ['uploading'],
          now: at(1),
        });
        expect([...changed].sort()).toEqual(uploading.map((f) => f.id).sort());
        for (const f of uploading) {
          expect(await fx.repository.getFile(f.id)).toEqual({ ...f, status: 'failed', errorCode: 'interrupted', errorMessage: error.message, updatedAt: at(1) });
        }
        expect(await fx.repository.getFile(stored.id)).toEqual(stored);
        expect(await fx.repository.getFile(deleted.id)).toEqual(deleted);
        const keys = [...uploading.map((f) => f.storageKey), stored.storageKey];
        expect(await fx.repository.findLiveStorageKeys(keys)).toEqual(new Set([stored.storageKey]));
        const next = fileOf({ storageKey: uploading[0]!.storageKey });
        await fx.repository.createFile(next);
        expect(await fx.repository.getFile(next.id)).toEqual(next);

        // Already failed: no longer uploading, so nothing changes; no status is one of [].
        expect(await fx.repository.failFiles(uploading.map((f) => f.id), error, { expectedStatuses: ['uploading'], now: at(2) })).toEqual([]);
        expect(await fx.repository.failFiles([stored.id], error, { expectedStatuses: [], now: at(2) })).toEqual([]);
        expect(await fx.repository.getFile(stored.id)).toEqual(stored);
      });

      it('fails every existing file among the ids when no status is expected', async () => {
        const stored = fileOf({ status: 'stored', storageKey: key() });
        const processed = fileOf({ status: 'processed', errorCode: 'old', errorMessage: 'old' });
        for (const f of [stored, processed]) await fx.repository.createFile(f);
        const changed = await fx.repository.failFiles([stored.id, randomUUID(), processed.id], { code: 'storage_error', message: 'The object is gone.' });
        expect([...changed].sort()).toEqual([stored.id, processed.id].sort());
        for (const f of [stored, processed]) {
          const failed = await fx.repository.getFile(f.id);
          expect(failed).toEqual({ ...f, status: 'failed', errorCode: 'storage_error', errorMessage: 'The object is gone.', updatedAt: failed?.updatedAt });
          expect(failed?.updatedAt.getTime()).toBeGreaterThan(T0.getTime());
        }
        expect(await fx.repository.findLiveStorageKeys([stored.storageKey, processed.storageKey])).toEqual(new Set());
      });

      it('rolls both back with a transaction that throws: the files and their keys are as before', async () => {
        const doomed = fileOf({ status: 'stored' });
        const failing = fileOf({ status: 'uploading' });
        for (const f of [doomed, failing]) await fx.repository.createFile(f);
        await expect(
          fx.unitOfWork.transaction(async (tx) => {
            expect(await tx.repository.deleteFiles([doomed.id])).toBe(1);
            expect(await tx.repository.failFiles([failing.id], { code: 'aborted', message: 'x' }, { expectedStatuses: ['uploading'], now: at(1) })).toEqual([failing.id]);
            expect(await tx.repository.getFile(doomed.id)).toBeUndefined();
            expect(await tx.repository.getFile(failing.id)).toMatchObject({ status: 'failed', errorCode: 'aborted' });
            expect(await tx.repository.findLiveStorageKeys([doomed.storageKey, failing.storageKey])).toEqual(new Set());
            throw new Error('after the maintenance');
          }),
        ).rejects.toThrow('after the maintenance');
        expect(await fx.repository.getFile(doomed.id)).toEqual(doomed);
        expect(await fx.repository.getFile(failing.id)).toEqual(failing);
        expect(await fx.repository.findLiveStorageKeys([doomed.storageKey, failing.storageKey])).toEqual(new Set([doomed.storageKey, failing.storageKey]));
        await expect(fx.repository.createFile(fileOf({ storageKey: doomed.storageKey }))).rejects.toBeInstanceOf(StorageKeyTakenError);
      });

      it('does nothing with no ids', async () => {
        const file = fileOf();
        await fx.repository.createFile(file);
        expect(await fx.repository.deleteFiles([])).toBe(0);
        expect(await fx.repository.failFiles([], { code: 'aborted', message: 'x' })).toEqual([]);
        expect(await fx.repository.failFiles([], { code: 'aborted', message: 'x' }, { expectedStatuses: ['uploading'] })).toEqual([]);
        await fx.unitOfWork.transaction(async (tx) => {
          expect(await tx.repository.deleteFiles([])).toBe(0);
          expect(await tx.repository.failFiles([], { code: 'aborted', message: 'x' })).toEqual([]);
        });
        expect(await fx.repository.getFile(file.id)).toEqual(file);
        expect(await fx.repository.listFiles({ limit: 10 })).toEqual([file]);
      });
    });
  });
}
