/**
 * The batched maintenance methods (`deleteFiles`, `failFiles`) are one statement each on the SQL
 * stores, however many ids: every statement the store sends is recorded (Postgres: a pool and
 * its connections whose `query` is recorded; SQLite: better-sqlite3's `verbose` hook, called
 * for every statement it runs). The contract suite checks what they do; this checks what they cost.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UnitOfWork, UploadFile, UploadRepository } from '../../src/index.js';
import { PostgresUploadStore } from '../../src/postgres/index.js';
import { SqliteUploadStore } from '../../src/sqlite/index.js';
import { fileOf } from '../contract/upload-store-contract.js';
import { testPool, useMigratedSchema } from '../helpers/postgres.js';

const FILES = 1000;
/** Ids no file has: more than either database binds as parameters (SQLite 32,766, Postgres 65,535). */
const ABSENT = 70_000;

interface Fixture {
  repository: UploadRepository;
  unitOfWork: UnitOfWork;
  /** Every statement sent since the last `reset()`. */
  statements: string[];
  reset(): void;
}

/** The checks, the same on both stores. */
function maintenanceSql(open: () => Fixture): void {
  let fx: Fixture;
  let files: UploadFile[];
  beforeEach(async () => {
    fx = open();
    files = Array.from({ length: FILES }, (_, i) => fileOf({ status: i % 2 === 0 ? 'stored' : 'uploading' }));
    await Promise.all(files.map((file) => fx.repository.createFile(file)));
    fx.reset();
  });
  const ids = () => files.map((file) => file.id);
  const summary = (statements: string[]) => statements.map((sql) => sql.trim().split(/\s+/u)[0]);

  it(`deletes ${FILES} files with one DELETE`, async () => {
    expect(await fx.repository.deleteFiles(ids())).toBe(FILES);
    expect(summary(fx.statements)).toEqual(['DELETE']);
    fx.reset();
    expect(await fx.repository.listFiles({ limit: 10 })).toEqual([]);
  });

  it(`fails ${FILES} files among ${ABSENT} absent ids with one UPDATE, with and without expected statuses`, async () => {
    const absent = Array.from({ length: ABSENT }, () => randomUUID());
    const changed = await fx.repository.failFiles([...absent, ...ids()], { code: 'interrupted', message: 'never finished' }, { expectedStatuses: ['uploading'] });
    expect(changed).toHaveLength(FILES / 2);
    expect(summary(fx.statements)).toEqual(['UPDATE']);
    fx.reset();
    expect(await fx.repository.failFiles(ids(), { code: 'storage_error', message: 'gone' })).toHaveLength(FILES);
    expect(summary(fx.statements)).toEqual(['UPDATE']);
    fx.reset();
    expect(await fx.repository.findLiveStorageKeys(files.map((file) => file.storageKey))).toEqual(new Set());
  });

  it('adds only its one statement to a transaction (no savepoint, no read first)', async () => {
    await fx.unitOfWork.transaction(async (tx) => {
      expect(await tx.repository.deleteFiles(ids().slice(0, FILES / 2))).toBe(FILES / 2);
      expect(await tx.repository.failFiles(ids().slice(FILES / 2), { code: 'aborted', message: 'x' }, { expectedStatuses: ['uploading'] })).toHaveLength(FILES / 4);
    });
    expect(summary(fx.statements)).toEqual(['BEGIN', 'DELETE', 'UPDATE', 'COMMIT']);
  });

  it('sends nothing for no ids, or for no expected status', async () => {
    expect(await fx.repository.deleteFiles([])).toBe(0);
    expect(await fx.repository.failFiles([], { code: 'aborted', message: 'x' })).toEqual([]);
    expect(await fx.repository.failFiles(ids(), { code: 'aborted', message: 'x' }, { expectedStatuses: [] })).toEqual([]);
    expect(fx.statements).toEqual([]);
  });
}

/** `target` with the text of every `query` call recorded in `log`, and so every connection it hands out. */
function recording<T extends object>(target: T, log: string[]): T {
  return new Proxy(target, {
    get(object, property) {
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== 'function') return value;
      if (property === 'query') {
        return (text: string, values?: unknown[]) => {
          log.push(text);
          return value.call(object, text, values);
        };
      }
      if (property === 'connect') return async () => recording((await value.call(object)) as object, log);
      return value.bind(object);
    },
  });
}

const { pool, available } = await testPool();
const schema = `doorito_maintenance_${randomBytes(4).toString('hex')}`;

describe.runIf(available)('batched maintenance SQL on PostgresUploadStore [postgres]', () => {
  useMigratedSchema(pool, schema);

  maintenanceSql(() => {
    const statements: string[] = [];
    const store = new PostgresUploadStore({ pool: recording(pool, statements), schema });
    return { repository: store.repository, unitOfWork: store, statements, reset: () => statements.splice(0) };
  });
});

describe('batched maintenance SQL on SqliteUploadStore [sqlite]', () => {
  let dir: string;
  const open: Array<{ close(): unknown }> = [];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-maintenance-'));
  });
  afterEach(async () => {
    for (const handle of open.splice(0)) await handle.close();
    await rm(dir, { recursive: true, force: true });
  });

  maintenanceSql(() => {
    const statements: string[] = [];
    const db = new Database(path.join(dir, 'uploads.db'), { verbose: (sql) => statements.push(String(sql)) });
    const store = new SqliteUploadStore({ database: db });
    // The store first, then the host's Database it was given.
    open.push(store, db);
    return { repository: store.repository, unitOfWork: store, statements, reset: () => statements.splice(0) };
  });
});
