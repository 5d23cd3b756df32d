import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryUploadStore, type UploadTransaction } from '../../src/index.js';
import { Journal } from '../../src/upload/memory/journal.js';
import { outboxRelayContract } from './outbox-relay-contract.js';
import { fileOf, uploadStoreContract } from './upload-store-contract.js';

uploadStoreContract('MemoryUploadStore', async () => ({ store: new MemoryUploadStore({ allowPrivateNetworks: true }) }));

outboxRelayContract('MemoryUploadStore', async () => {
  const store = new MemoryUploadStore({ allowPrivateNetworks: true });
  return { stores: [store, store, store], cleanup: async () => undefined };
});

describe('MemoryUploadStore: the undo journal', () => {
  const T0 = new Date('2026-11-27T10:00:00.000Z');
  const key = (name: string) => `uploads/2026/11/${name}-${randomUUID()}.txt`;

  /** A store with files of every status, a batch, endpoints, events in every delivery state. */
  async function populated() {
    const store = new MemoryUploadStore({ allowPrivateNetworks: true });
    await store.createWebhookEndpoint({ url: 'http://127.0.0.1:9/all' });
    await store.createWebhookEndpoint({ url: 'http://127.0.0.1:9/stored', eventTypes: ['file.stored'] });
    const batch = await store.repository.createBatch({ id: randomUUID(), status: 'init', idempotencyKey: `form-${randomUUID()}`, createdAt: T0, updatedAt: T0 });
    const files = [
      fileOf({ status: 'stored', batchId: batch.id }),
      fileOf({ status: 'uploading', batchId: batch.id }),
      fileOf({ status: 'processed' }),
      fileOf({ status: 'failed', errorCode: 'aborted' }),
      fileOf({ status: 'uploading' }),
      fileOf({ status: 'stored', storageKey: '' }),
    ];
    for (const f of files) await store.repository.createFile(f);
    for (const f of files.slice(0, 3)) {
      await store.outbox.emit({ aggregateType: 'UploadFile', aggregateId: f.id, eventType: 'file.stored', payload: { file_id: f.id } });
    }
    const [first] = await store.claimDeliveries({ now: new Date(), limit: 1, leaseUntil: new Date(Date.now() + 60_000) });
    await store.completeDeliveries([{ claimed: first!.delivery, outcome: { status: 'delivered' } }], new Date());
    return { store, files, batch };
  }

  /** Everything a user of the store can observe. */
  async function snapshot(store: MemoryUploadStore, keys: string[]) {
    const files = await store.repository.listFiles({ limit: 1000 });
    const events = await store.events();
    const batchIds = [...new Set(files.flatMap((f) => (f.batchId === undefined ? [] : [f.batchId])))];
    return {
      files,
      events,
      eventStates: await Promise.all(events.map((e) => store.getEvent(e.id))),
      deliveries: await store.listDeliveries({ limit: 1000 }),
      endpoints: await store.listWebhookEndpoints(),
      liveKeys: await store.repository.findLiveStorageKeys([...files.map((f) => f.storageKey), ...keys]),
      byKey: await Promise.all([...files.map((f) => f.storageKey), ...keys].map((k) => store.repository.findFilesByStorageKey(k))),
      batches: await Promise.all(batchIds.map(async (id) => ({ batch: await store.repository.getBatch(id), files: await store.repository.listBatchFiles(id) }))),
      due: await store.listDeliveries({ status: 'pending', limit: 1000 }),
    };
  }

  it('leaves the state exactly as it was after a transaction that changes everything and throws', async () => {
    const { store, files, batch } = await populated();
    const [stored, uploading, processed, failed, other] = files;
    const fresh = [key('new'), key('claimed'), key('moved')] as const;
    const before = await snapshot(store, [...fresh]);
    const idempotencyKey = `form-${randomUUID()}`;

    const changes = async (tx: UploadTransaction) => {
      await tx.repository.createFile(fileOf({ storageKey: fresh[0], batchId: batch.id }));
      await tx.repository.updateFile(uploading!.id, { status: 'stored', storageKey: fresh[2], sha256: 'ff', sizeBytes: 3, metadata: { step: 'stored' } });
      expect(await tx.repository.claimStorageKey(other!.id, fresh[1])).toBe(true);
      // The key the claim released, taken by another file in the same transaction.
      await tx.repository.createFile(fileOf({ storageKey: other!.storageKey }));
      await tx.repository.deleteFile(stored!.id);
      expect(await tx.repository.deleteFiles([processed!.id, randomUUID()])).toBe(1);
      expect(await tx.repository.failFiles([failed!.id, other!.id], { code: 'interrupted', message: 'x' })).toHaveLength(2);
      await tx.repository.updateFile(failed!.id, { status: 'uploading' });
      await tx.repository.updateBatch(batch.id, { status: 'complete' });
      await tx.repository.createBatch({ id: randomUUID(), status: 'init', idempotencyKey, createdAt: T0, updatedAt: T0 });
      for (const f of files) await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: f.id, eventType: 'file.expiring', payload: { n: 1 } });
      expect((await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: stored!.id, eventType: 'file.stored', payload: {} })).duplicate).toBe(true);
    };
    await expect(
      store.transaction(async (tx) => {
        await changes(tx);
        throw new Error('after every change');
      }),
    ).rejects.toThrow('after every change');

    expect(await snapshot(store, [...fresh])).toEqual(before);
    // The indexes were rolled back too: the same changes apply again, and commit.
    await store.transaction(changes);
    expect((await store.events()).filter((e) => e.eventType === 'file.expiring')).toHaveLength(files.length);
    expect(await store.repository.createBatch({ id: randomUUID(), status: 'init', idempotencyKey, createdAt: T0, updatedAt: T0 })).not.toMatchObject({ status: 'complete' });
    // `other` claimed fresh[1], then failed: the key is free again.
    expect(await store.repository.findLiveStorageKeys([...fresh])).toEqual(new Set([fresh[0], fresh[2]]));
  });

  it('changes nothing when a relay operation throws part way', async () => {
    const { store } = await populated();
    const now = new Date(Date.now() + 1000);
    const claimed = await store.claimDeliveries({ now, limit: 10, leaseUntil: new Date(now.getTime() + 60_000) });
    expect(claimed.length).toBeGreaterThan(1);
    const before = await snapshot(store, []);
    // The first outcome is recorded before the notice's payload, which cannot be copied, throws.
    const round = claimed.map((c, i) => ({
      claimed: c.delivery,
      outcome: { status: 'delivered' as const },
      ...(i === 1 ? { emit: [{ aggregateType: 'WebhookEndpoint', aggregateId: c.endpoint.id, eventType: 'webhook.notice', payload: { fn: () => 1 } }] } : {}),
    }));
    await expect(store.completeDeliveries(round, now)).rejects.toThrow();
    expect(await snapshot(store, [])).toEqual(before);
    // The leases still hold.
    expect(await store.completeDeliveries(round.map(({ claimed: c, outcome }) => ({ claimed: c, outcome })), now)).toEqual(claimed.map(() => true));
  });

  it('refuses a transaction handle used after its transaction ended', async () => {
    const store = new MemoryUploadStore();
    let leaked: UploadTransaction | undefined;
    await store.transaction(async (tx) => {
      leaked = tx;
    });
    await expect(leaked!.repository.createFile(fileOf())).rejects.toThrow(/transaction has ended/u);
    await expect(leaked!.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'x', eventType: 'file.stored', payload: {} })).rejects.toThrow(/transaction has ended/u);
    expect(await store.repository.listFiles({ limit: 10 })).toEqual([]);
  });

  it('keeps what callers pass and get apart from the state', async () => {
    const store = new MemoryUploadStore();
    const file = fileOf();
    await store.repository.createFile(file);
    const now = new Date(T0.getTime() + 1000);
    const updated = await store.repository.updateFile(file.id, { metadata: { a: '1' } }, { now });
    file.metadata['source'] = 'changed';
    now.setTime(0);
    updated!.metadata['a'] = 'changed';
    updated!.updatedAt.setTime(0);
    (await store.repository.getFile(file.id))!.metadata['a'] = 'changed';
    expect(await store.repository.getFile(file.id)).toMatchObject({ metadata: { a: '1' }, updatedAt: new Date(T0.getTime() + 1000) });
    await store.repository.updateFile(file.id, { status: 'stored' }, { now: T0 });
    expect(await store.repository.getFile(file.id)).toMatchObject({ originalFilename: file.originalFilename, metadata: { a: '1' } });
  });

  it('undoes in reverse order, and restores the order of maps that keep it', async () => {
    const journal = new Journal();
    const ordered = new Map([['a', 1], ['b', 2], ['c', 3]]);
    const index = new Map([['k', new Set(['x'])]]);
    await expect(
      journal.run(() => {
        journal.set(ordered, 'b', 20);
        journal.set(ordered, 'd', 4);
        journal.delete(ordered, 'a', { keepOrder: true });
        journal.delete(ordered, 'b', { keepOrder: true });
        journal.set(ordered, 'b', 200);
        journal.unlink(index, 'k', 'x');
        journal.link(index, 'k', 'y');
        journal.link(index, 'j', 'z');
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    expect([...ordered]).toEqual([['a', 1], ['b', 2], ['c', 3]]);
    expect([...index].map(([k, members]) => [k, [...members]])).toEqual([['k', ['x']]]);
    // A committed run is kept, and nothing of it is undone by a later failing one.
    await journal.run(() => journal.set(ordered, 'e', 5));
    await expect(journal.run(() => Promise.reject(new Error('nothing to undo')))).rejects.toThrow();
    expect([...ordered.keys()]).toEqual(['a', 'b', 'c', 'e']);
  });
});
