/**
 * The upload store contract on SQLite (better-sqlite3), on a fresh database file per test, and
 * what only SQLite has: migrations on one file from several connections and processes, several
 * stores (connections) on one file, a host-owned Database, re-opening a file.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStorageConfigError, isStorageError, isStorageKeyTakenError, type OutboxDelivery, type UploadFile } from '../../src/index.js';
import { SqliteUploadStore, migrate } from '../../src/sqlite/index.js';
import { outboxRelayContract } from './outbox-relay-contract.js';
import { fileOf, uploadStoreContract } from './upload-store-contract.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const sqliteModule = fileURLToPath(new URL('../../src/sqlite/index.ts', import.meta.url));

/** Run `body` (ESM, with `Database`, `migrate`, `SqliteUploadStore` and `file` in scope) in a new Node process; returns its stdout as JSON. */
async function inProcess(file: string, startAt: number, body: string): Promise<unknown> {
  const code = `
    import Database from 'better-sqlite3';
    import { migrate, SqliteUploadStore } from ${JSON.stringify(sqliteModule)};
    const file = ${JSON.stringify(file)};
    while (Date.now() < ${startAt}) {} // start together with the other processes
    ${body}
  `;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: root });
  return JSON.parse(stdout);
}

const later = (ms: number, from = new Date()) => new Date(from.getTime() + ms);

describe('SqliteUploadStore [sqlite]', () => {
  let dir: string;
  let file: string;
  const open: Array<{ close(): unknown }> = [];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-sqlite-'));
    file = path.join(dir, 'uploads.db');
  });
  afterEach(async () => {
    for (const handle of open.splice(0)) await handle.close();
    await rm(dir, { recursive: true, force: true });
  });
  const store = (options: Partial<ConstructorParameters<typeof SqliteUploadStore>[0]> = {}) => {
    const s = new SqliteUploadStore({ database: file, ...options });
    open.push(s);
    return s;
  };
  const connection = () => {
    const db = new Database(file);
    open.push(db);
    return db;
  };

  // afterEach closes the store and removes the file.
  uploadStoreContract('SqliteUploadStore', async () => ({ store: store() }));

  it('migrates idempotently, recording the version, on several connections to one file', () => {
    const a = connection();
    const b = connection();
    expect(migrate(a)).toEqual({ applied: 2 });
    expect(migrate(a)).toEqual({ applied: 0 });
    expect(migrate(b)).toEqual({ applied: 0 });
    expect(a.prepare('SELECT version FROM doorito_migration ORDER BY version').all()).toEqual([{ version: 1 }, { version: 2 }]);
    const tables = a.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).pluck().all();
    expect(tables).toEqual(['doorito_migration', 'outbox_event', 'upload_batch', 'upload_file', 'webhook_endpoint']);
  });

  describe('migration 2: one live file per storage key', () => {
    const hour = (h: number) => new Date(Date.UTC(2026, 10, 27, h));
    /** A file as version 1 left it: migration 2 only adds the index (after fixing the data). */
    const atVersion1 = () => {
      const db = connection();
      migrate(db);
      db.exec(`DROP INDEX upload_file_live_storage_key_idx; DELETE FROM doorito_migration WHERE version = 2`);
      return { db, store: store({ database: db, migrate: false }) };
    };
    const versions = (db: Database.Database) => db.prepare('SELECT version FROM doorito_migration ORDER BY version').pluck().all();

    it('fails the uploading records that lost their key, leaving the stored holder and every other file as they were', async () => {
      const { db, store: s } = atVersion1();
      const shared = 'uploads/2026/11/report.txt';
      const racing = 'uploads/2026/11/notes.txt';
      const stored = fileOf({ storageKey: shared, status: 'stored', sha256: 'ab', createdAt: hour(1), updatedAt: hour(1) });
      const before = fileOf({ storageKey: shared, createdAt: hour(0), updatedAt: hour(0) });
      const after = fileOf({ storageKey: shared, createdAt: hour(2), updatedAt: hour(2) });
      const olderRacer = fileOf({ storageKey: racing, createdAt: hour(0) });
      const newerRacer = fileOf({ storageKey: racing, createdAt: hour(1) });
      const failed = fileOf({ storageKey: shared, status: 'failed', errorCode: 'aborted' });
      const alone = fileOf();
      for (const f of [stored, before, after, olderRacer, newerRacer, failed, alone]) await s.repository.createFile(f);

      expect(migrate(db)).toEqual({ applied: 1 });
      expect(versions(db)).toEqual([1, 2]);
      for (const f of [stored, newerRacer, failed, alone]) expect(await s.repository.getFile(f.id)).toEqual(f);
      for (const f of [before, after, olderRacer]) {
        const got = await s.repository.getFile(f.id);
        expect(got).toMatchObject({ ...f, status: 'failed', errorCode: 'interrupted', updatedAt: expect.any(Date) });
        expect(got?.errorMessage).toMatch(/another live upload holds the same storage key/u);
      }
      const late = fileOf({ storageKey: shared });
      expect(isStorageKeyTakenError(await s.repository.createFile(late).catch((e: unknown) => e))).toBe(true);
    });

    it('refuses to migrate when stored files share keys, naming the database and the keys, and changes nothing', async () => {
      const { db, store: s } = atVersion1();
      const keys = Array.from({ length: 12 }, (_, i) => `uploads/2026/11/dup-${String(i).padStart(2, '0')}.txt`);
      const pairs: UploadFile[][] = keys.map((k) => [fileOf({ storageKey: k, status: 'stored' }), fileOf({ storageKey: k, status: 'processed' })]);
      const loser = fileOf({ storageKey: keys[0]!, createdAt: hour(5) });
      for (const f of [...pairs.flat(), loser]) await s.repository.createFile(f);

      let error: unknown;
      try {
        migrate(db);
      } catch (caught) {
        error = caught;
      }
      expect(isStorageError(error)).toBe(true);
      const message = (error as Error).message;
      expect(message).toContain(`SQLite database "${file}"`);
      for (const k of keys.slice(0, 10)) expect(message).toContain(`"${k}"`);
      expect(message).not.toContain(`"${keys[10]!}"`);
      expect(message).toContain('and 2 more');
      expect(message).toMatch(/keep the one file .* mark the others failed/u);
      expect(versions(db)).toEqual([1]);
      expect(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'upload_file_live_storage_key_idx'`).all()).toEqual([]);
      expect(await s.repository.getFile(loser.id)).toEqual(loser);
      // A store opened on the file meanwhile refuses to start, with the same error.
      expect(() => new SqliteUploadStore({ database: file })).toThrow(/mark the others failed/u);

      for (const [, second] of pairs) await s.repository.updateFile(second!.id, { status: 'failed', errorCode: 'duplicate_key' });
      expect(migrate(db)).toEqual({ applied: 1 });
      expect(await s.repository.getFile(loser.id)).toMatchObject({ status: 'failed', errorCode: 'interrupted' });
      expect(await s.repository.getFile(pairs[0]![0]!.id)).toEqual(pairs[0]![0]);
    });
  });

  it('lets exactly one of two processes migrating a fresh file at once apply the migration', async () => {
    const startAt = Date.now() + 1_500;
    // The store switches the fresh file to WAL (both processes at once), then each migrates.
    const body = `const db = new Database(file); new SqliteUploadStore({ database: db, migrate: false }); console.log(JSON.stringify(migrate(db))); db.close();`;
    const results = (await Promise.all([inProcess(file, startAt, body), inProcess(file, startAt, body)])) as Array<{ applied: number }>;
    expect(results.map((r) => r.applied).sort()).toEqual([0, 2]);
  });

  it('sets WAL and opens the file from a path; refuses a database that is neither a Database nor a path', () => {
    const s = store();
    expect(connection().pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s).toBeInstanceOf(SqliteUploadStore);
    for (const database of [42, {}, null, '']) {
      let caught: unknown;
      try {
        new SqliteUploadStore({ database: database as unknown as string });
      } catch (error) {
        caught = error;
      }
      expect(isStorageConfigError(caught)).toBe(true);
      expect(caught).toMatchObject({ code: 'E_CONFIG', option: 'database' });
    }
    expect(() => new SqliteUploadStore({ database: path.join(dir, 'missing-dir', 'x.db') })).toThrow(/could not open/u);
  });

  it('never hands one event to two stores (connections) on the same file claiming at once', async () => {
    const stores = [store(), store(), store()];
    const ids = new Set<string>();
    for (let i = 0; i < 60; i += 1) {
      const { event } = await stores[i % 3]!.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } });
      ids.add(event.id);
    }
    const now = later(1_000);
    const claimed: OutboxDelivery[] = [];
    for (let round = 0; round < 3; round += 1) {
      const claims = await Promise.all(stores.map((s) => s.claimEvents({ now, limit: 10, leaseUntil: later(60_000, now) })));
      claimed.push(...claims.flat());
    }
    const claimedIds = claimed.map((e) => e.id);
    expect(new Set(claimedIds).size).toBe(claimedIds.length);
    expect(new Set(claimedIds)).toEqual(ids);
    expect(claimed.every((e) => e.attempts === 1)).toBe(true);
  });

  it('never hands one event to two processes claiming from the same file at once', async () => {
    const s = store();
    const ids: string[] = [];
    for (let i = 0; i < 90; i += 1) {
      ids.push((await s.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } })).event.id);
    }
    const startAt = Date.now() + 1_500;
    const body = `
      const store = new SqliteUploadStore({ database: file });
      const now = new Date(Date.now() + 1000);
      const ids = [];
      for (;;) {
        const batch = await store.claimEvents({ now, limit: 3, leaseUntil: new Date(now.getTime() + 60000) });
        if (batch.length === 0) break;
        ids.push(...batch.map((e) => e.id));
      }
      await store.close();
      console.log(JSON.stringify(ids));
    `;
    const perProcess = (await Promise.all([0, 1, 2].map(() => inProcess(file, startAt, body)))) as string[][];
    const claimed = perProcess.flat();
    expect(new Set(claimed).size).toBe(claimed.length);
    expect([...claimed].sort()).toEqual([...ids].sort());
  });

  it('queues a second store on the same file behind a transaction that awaits, instead of failing with SQLITE_BUSY', async () => {
    const a = store({ busyTimeoutMs: 100 });
    const b = store({ busyTimeoutMs: 100 });
    const file1 = fileOf();
    const inTransaction = a.transaction(async (tx) => {
      await tx.repository.createFile(file1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: file1.id, eventType: 'file.stored', payload: {} });
    });
    const emitted = b.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} });
    await Promise.all([inTransaction, emitted]);
    expect(await b.repository.getFile(file1.id)).toEqual(file1);
    expect(await b.events()).toHaveLength(2);
  });

  it('refuses a transaction view used after its transaction ended', async () => {
    const s = store();
    const tx = await s.transaction(async (t) => t);
    await expect(tx.repository.getFile(randomUUID())).rejects.toThrow(/already ended/u);
  });

  it('leaves a host-owned Database open on close(), and closes the file it opened itself', async () => {
    const db = connection();
    const hosted = new SqliteUploadStore({ database: db });
    await hosted.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} });
    await hosted.close();
    expect(db.open).toBe(true);
    expect(db.prepare('SELECT count(*) FROM outbox_event').pluck().get()).toBe(1);

    const owned = new SqliteUploadStore({ database: file });
    await owned.close();
    await expect(owned.events()).rejects.toThrow(/not open/u);
  });

  it('keeps committed data, and not rolled-back data, when the file is opened again', async () => {
    const first = new SqliteUploadStore({ database: file });
    const kept = fileOf({ metadata: { a: '1' } });
    const lost = fileOf();
    await first.transaction(async (tx) => {
      await tx.repository.createFile(kept);
      await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: kept.id, eventType: 'file.stored', payload: { n: 1 } });
    });
    await expect(
      first.transaction(async (tx) => {
        await tx.repository.createFile(lost);
        await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: lost.id, eventType: 'file.stored', payload: { n: 2 } });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await first.close();

    const second = store();
    expect(await second.repository.getFile(kept.id)).toEqual(kept);
    expect(await second.repository.getFile(lost.id)).toBeUndefined();
    expect((await second.events()).map((e) => e.aggregateId)).toEqual([kept.id]);
  });

  // Three stores (connections) on one file, as three relays would have.
  outboxRelayContract('SqliteUploadStore', async () => ({ stores: [store(), store(), store()], cleanup: async () => undefined }));
});
