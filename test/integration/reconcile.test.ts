/**
 * UploadService.reconcile() against leftovers built by hand the way a crash leaves them: an
 * `uploading` record past the grace with its object stored, an object under `uploads/` that no
 * record names, a crashed streamed save (its `uploading` record, and an FS temp file or an S3
 * claim + multipart upload), a `stored` record whose object was deleted behind its back. Beside
 * them a fresh upload, an upload still in flight and data outside `uploads/`, which must survive.
 * On memory + MemoryUploadStore, on the filesystem + SQLite, on S3 (each server) + Postgres.
 *
 * Time: records get their createdAt from the service's clock. Filesystem mtimes can be moved
 * (utimes), so there leftovers are aged 48 h and reconcile runs at the real time with the default
 * grace (24 h), and young unowned files must survive it. Memory objects and S3 LastModified
 * cannot be moved: there reconcile runs with the clock 25 h ahead, so that every object is past
 * the grace (as with `graceHours: 0`) while records made at that clock are fresh.
 */
import {
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStorage, MemoryUploadStore, UploadService, type ReconcileReport, type Storage, type UploadFile } from '../../src/index.js';
import { PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import { SqliteUploadStore } from '../../src/sqlite/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { CLAIM_METADATA, TOKEN_METADATA } from '../../src/storage/s3/write-protocol.js';
import { uuidv7 } from '../../src/upload/index.js';
import { describeS3, rawClient, type S3TestEnv } from '../helpers/s3-env.js';
import { s3Cleanup, s3StorageFor } from '../helpers/s3-fixture.js';
import { testPool, truncateStore } from '../helpers/postgres.js';
import { patternStream, sha256 } from '../helpers/streams.js';

const HOUR = 3600_000;

type Store = MemoryUploadStore | SqliteUploadStore | PostgresUploadStore;

/** A storage and a store for one test, and the storage-specific ways a crash leaves things. */
interface Backend {
  storage: Storage;
  store: Store;
  /** Records of leftovers are created at `old`, fresh ones at `fresh`; reconcile runs at `fresh`. */
  old: Date;
  fresh: Date;
  /** Make the object (or temp file) at `key` older than the grace, where the storage allows it. */
  age(key: string): Promise<void>;
  /**
   * Leave what a streamed save that crashed mid-upload leaves for `key`, past the grace (or young,
   * where `young` is possible); returns the pending writes made, as `<kind> <key>` lines.
   */
  crashedWrite(key: string, options?: { young?: boolean }): Promise<string[]>;
  /** Whether leftovers can be younger than the grace (FS: mtimes can be moved). */
  ageable: boolean;
  cleanup(): Promise<void>;
}

type BackendFactory = () => Promise<Backend>;

const memoryBackend: BackendFactory = async () => {
  const real = new Date();
  return {
    storage: new MemoryStorage(),
    store: new MemoryUploadStore(),
    old: real,
    fresh: new Date(real.getTime() + 25 * HOUR),
    age: async () => undefined,
    // A memory save takes its key in one step with all its bytes: a crash leaves nothing pending.
    crashedWrite: async () => [],
    ageable: false,
    cleanup: async () => undefined,
  };
};

const tempName = () => `.doorito-${randomBytes(12).toString('base64url').replace(/[^A-Za-z0-9]/gu, 'x').slice(0, 16)}.tmp`;

const fsBackend: BackendFactory = async () => {
  const real = new Date();
  const old = new Date(real.getTime() - 48 * HOUR);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-reconcile-fs-'));
  const store = new SqliteUploadStore({ database: path.join(dir, 'uploads.db') });
  const root = path.join(dir, 'media');
  const file = (key: string) => path.join(root, ...key.split('/'));
  const age = (key: string) => utimes(file(key), old, old);
  return {
    storage: new FileSystemStorage({ location: root }),
    store,
    old,
    fresh: real,
    age,
    // The save's temp file, in the directory of the key it was for, half written.
    crashedWrite: async (key, options = {}) => {
      const tempKey = `${path.posix.dirname(key)}/${tempName()}`;
      await mkdir(path.dirname(file(tempKey)), { recursive: true });
      await writeFile(file(tempKey), randomBytes(4096));
      if (options.young !== true) await age(tempKey);
      return [`temp-file ${tempKey}`];
    },
    ageable: true,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
};

const { pool, available: pgAvailable } = await testPool();
const schema = `doorito_reconcile_${randomBytes(4).toString('hex')}`;

const s3Backend =
  (env: S3TestEnv): BackendFactory =>
  async () => {
    const real = new Date();
    const client = rawClient(env);
    const location = `reconcile-${randomUUID()}`;
    const storage = s3StorageFor(env, { location });
    return {
      storage,
      store: new PostgresUploadStore({ pool, schema }),
      old: real,
      fresh: new Date(real.getTime() + 25 * HOUR),
      age: async () => undefined,
      // Its name claim (an empty object marked as a claim) and its multipart upload, one part sent.
      crashedWrite: async (key) => {
        const Key = `${location}/${key}`;
        await client.send(
          new PutObjectCommand({ Bucket: env.bucket, Key, Body: new Uint8Array(0), ContentLength: 0, Metadata: { [CLAIM_METADATA]: randomUUID() } }),
        );
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: env.bucket, Key, Metadata: { [TOKEN_METADATA]: randomUUID() } }));
        const body = randomBytes(1024);
        await client.send(new UploadPartCommand({ Bucket: env.bucket, Key, UploadId, PartNumber: 1, Body: body, ContentLength: body.length }));
        return [`claim ${key}`, `multipart-upload ${key}`];
      },
      ageable: false,
      cleanup: async () => {
        await storage.drain();
        await s3Cleanup(client, env.bucket, `${location}/`);
        storage.destroy();
        client.destroy();
        await truncateStore(pool, schema);
      },
    };
  };

// ---- helpers ------------------------------------------------------------------------------

const uploadingRecord = (key: string, createdAt: Date): UploadFile => ({
  id: uuidv7(createdAt),
  storageKey: key,
  originalFilename: path.posix.basename(key),
  contentType: 'application/octet-stream',
  sizeBytes: 0,
  sha256: '',
  metadata: {},
  status: 'uploading',
  createdAt,
  updatedAt: createdAt,
});

/** Everything the storage and the store hold: object keys, pending writes, records. */
async function snapshot(b: Backend) {
  const objects: string[] = [];
  for await (const entry of b.storage.list('')) objects.push(entry.key);
  const pending: string[] = [];
  for await (const write of b.storage.listPendingWrites?.({}) ?? []) pending.push(`${write.kind} ${write.key}`);
  const records = await b.store.repository.listFiles({ limit: 1000 });
  return { objects: objects.sort(), pending: pending.sort(), records: [...records].sort((x, y) => x.id.localeCompare(y.id)) };
}

const zeros = (dryRun: boolean): ReconcileReport => ({ dryRun, interruptedUploads: 0, pendingWrites: 0, orphanObjects: 0, missingObjects: 0, failures: [] });

/** Run reconcile with `limit` until it returns no cursor; the reports of every call. */
async function reconcileAll(service: UploadService, limit: number): Promise<ReconcileReport[]> {
  const reports: ReconcileReport[] = [];
  let cursor: string | undefined;
  do {
    const report = await service.reconcile({ limit, ...(cursor === undefined ? {} : { cursor }) });
    reports.push(report);
    cursor = report.cursor;
  } while (cursor !== undefined && reports.length < 50);
  return reports;
}

// ---- the suites ---------------------------------------------------------------------------

function reconcileSuite(factory: BackendFactory): void {
  let b: Backend | undefined;
  let now: Date;
  afterEach(async () => {
    await b?.cleanup();
    b = undefined;
  });
  const serviceOf = (backend: Backend) =>
    new UploadService({ storage: backend.storage, repository: backend.store.repository, unitOfWork: backend.store, clock: () => now });

  it('reports the leftovers in a dry run, repairs exactly those, leaves fresh uploads and everything outside uploads/ alone, and then finds nothing', async () => {
    b = await factory();
    const { storage, store } = b;
    const service = serviceOf(b);

    // ---- what crashes left (records made at `old`, objects past the grace) ----
    now = b.old;
    const interrupted = uploadingRecord('uploads/2026/10/interrupted.bin', b.old);
    await store.repository.createFile(interrupted);
    await storage.save(interrupted.storageKey, patternStream(2048, 1));
    await b.age(interrupted.storageKey);

    const orphanKey = 'uploads/2026/10/orphan.bin';
    await storage.save(orphanKey, patternStream(2048, 2));
    await b.age(orphanKey);

    const crashed = uploadingRecord('uploads/2026/10/big.bin', b.old);
    await store.repository.createFile(crashed);
    const crashedWrites = await b.crashedWrite(crashed.storageKey);

    const missing = await service.createUploadFile({ content: patternStream(1024, 3), filename: 'missing.bin' });
    expect(missing.status).toBe('stored');
    await storage.delete(missing.storageKey);

    // Outside the upload prefix, as stale as the rest: never touched.
    const outside = ['keep/outside.bin', 'uploads-archive/outside.bin'];
    for (const [i, key] of outside.entries()) {
      await storage.save(key, patternStream(1024, 10 + i));
      await b.age(key);
    }
    const outsideWrites = await b.crashedWrite('keep/big.bin');

    // ---- what must survive (records made at `fresh`) ----
    now = b.fresh;
    const fresh = await service.createUploadFile({ content: patternStream(4096, 7), filename: 'fresh.bin' });
    expect(fresh.status).toBe('stored');
    const freshSha = await sha256(patternStream(4096, 7));
    const inFlight = uploadingRecord(`${path.posix.dirname(fresh.storageKey)}/in-flight.bin`, b.fresh);
    await store.repository.createFile(inFlight);
    // Where ages can be told apart: the in-flight upload's temp file, and an unowned file younger than the grace.
    const youngWrites = b.ageable ? await b.crashedWrite(inFlight.storageKey, { young: true }) : [];
    const youngKey = 'uploads/2026/10/just-written.bin';
    if (b.ageable) await storage.save(youngKey, patternStream(512, 4));

    const pendingLeftovers = crashedWrites.length;
    const expected = { interruptedUploads: 2, pendingWrites: pendingLeftovers, orphanObjects: 2, missingObjects: 1, failures: [] };
    const before = await snapshot(b);
    expect(before.pending).toEqual([...crashedWrites, ...outsideWrites, ...youngWrites].sort());

    // ---- dry run: counts, changes nothing ----
    expect(await service.reconcile({ dryRun: true })).toEqual({ dryRun: true, ...expected });
    expect(await snapshot(b)).toEqual(before);

    // ---- real run: repairs exactly those ----
    expect(await service.reconcile()).toEqual({ dryRun: false, ...expected });
    const after = await snapshot(b);
    // Gone: the interrupted upload's object, the orphan, and (S3) the crashed save's claim.
    const removed = new Set([interrupted.storageKey, orphanKey, crashed.storageKey]);
    expect(before.objects).toEqual(expect.arrayContaining([interrupted.storageKey, orphanKey]));
    expect(after.objects).toEqual(before.objects.filter((key) => !removed.has(key)));
    expect(after.objects).toEqual(expect.arrayContaining([fresh.storageKey, ...outside, ...(b.ageable ? [youngKey] : [])]));
    expect(after.pending).toEqual([...outsideWrites, ...youngWrites].sort());

    expect(await store.repository.getFile(interrupted.id)).toMatchObject({ status: 'failed', errorCode: 'interrupted', storageKey: interrupted.storageKey });
    expect(await store.repository.getFile(crashed.id)).toMatchObject({ status: 'failed', errorCode: 'interrupted' });
    expect(await store.repository.getFile(missing.id)).toMatchObject({ status: 'failed', errorCode: 'object_missing', storageKey: missing.storageKey });
    expect(await store.repository.getFile(fresh.id)).toEqual(fresh);
    expect(await store.repository.getFile(inFlight.id)).toEqual(inFlight);
    expect(await sha256(await storage.open(fresh.storageKey))).toBe(freshSha);
    for (const [i, key] of outside.entries()) expect(await sha256(await storage.open(key))).toBe(await sha256(patternStream(1024, 10 + i)));
    // Nothing else changed among the records.
    const changed = new Set([interrupted.id, crashed.id, missing.id]);
    expect(after.records.filter((r) => !changed.has(r.id))).toEqual(before.records.filter((r) => !changed.has(r.id)));

    // ---- a second run finds nothing ----
    expect(await service.reconcile({ dryRun: true })).toEqual(zeros(true));
    expect(await service.reconcile()).toEqual(zeros(false));
    expect(await snapshot(b)).toEqual(after);
  });

  it('bounds each call by `limit` and goes on with the cursor until a call returns none', async () => {
    b = await factory();
    const { storage, store } = b;
    const service = serviceOf(b);
    now = b.old;
    const orphans = Array.from({ length: 5 }, (_, i) => `uploads/2026/10/orphan-${i}.bin`);
    for (const [i, key] of orphans.entries()) {
      await storage.save(key, patternStream(256, i));
      await b.age(key);
    }
    const missing: UploadFile[] = [];
    for (let i = 0; i < 5; i += 1) {
      const file = await service.createUploadFile({ content: patternStream(256, 20 + i), filename: `missing-${i}.bin` });
      await storage.delete(file.storageKey);
      missing.push(file);
    }
    await storage.save('keep/outside.bin', 'kept');
    await b.age('keep/outside.bin');
    now = b.fresh;
    const fresh = await service.createUploadFile({ content: patternStream(512, 9), filename: 'fresh.bin' });
    const before = await snapshot(b);

    const reports = await reconcileAll(service, 2);
    expect(reports.length).toBeGreaterThan(1);
    expect(reports.at(-1)?.cursor).toBeUndefined();
    for (const report of reports.slice(0, -1)) expect(report.cursor).toEqual(expect.any(String));
    for (const report of reports) {
      expect(report.orphanObjects).toBeLessThanOrEqual(2);
      expect(report.missingObjects).toBeLessThanOrEqual(2);
    }
    const sum = (field: 'orphanObjects' | 'missingObjects') => reports.reduce((n, r) => n + r[field], 0);
    expect({ orphanObjects: sum('orphanObjects'), missingObjects: sum('missingObjects') }).toEqual({ orphanObjects: 5, missingObjects: 5 });

    const after = await snapshot(b);
    expect(after.objects).toEqual(before.objects.filter((key) => !orphans.includes(key)));
    expect(after.objects).toEqual(expect.arrayContaining([fresh.storageKey, 'keep/outside.bin']));
    for (const file of missing) expect(await store.repository.getFile(file.id)).toMatchObject({ status: 'failed', errorCode: 'object_missing' });
    expect(await store.repository.getFile(fresh.id)).toEqual(fresh);
    // The whole round is done: an unbounded call finds nothing left.
    expect(await service.reconcile()).toEqual(zeros(false));
  });


  it('says there is more when only the stale records or pending writes reached the limit', async () => {
    b = await factory();
    const service = serviceOf(b);
    now = b.old;
    const crashed = [];
    for (let i = 0; i < 3; i += 1) {
      const file = uploadingRecord(`uploads/2026/10/crashed-${i}.bin`, b.old);
      await b.store.repository.createFile(file);
      await b.crashedWrite(file.storageKey);
      crashed.push(file);
    }
    now = b.fresh;
    const first = await service.reconcile({ limit: 2 });
    expect(first.interruptedUploads).toBe(2);
    expect(first.cursor).toEqual(expect.any(String));
    const reports = [first];
    let cursor = first.cursor;
    while (cursor !== undefined && reports.length < 20) {
      const report = await service.reconcile({ limit: 2, cursor });
      reports.push(report);
      cursor = report.cursor;
    }
    expect(cursor).toBeUndefined();
    const sum = (field: 'interruptedUploads' | 'pendingWrites') => reports.reduce((n, r) => n + r[field], 0);
    expect(sum('interruptedUploads')).toBe(3);
    for (const file of crashed) expect(await b.store.repository.getFile(file.id)).toMatchObject({ status: 'failed', errorCode: 'interrupted' });
    // Every pending write went, each counted as one (a claim is never counted as an orphan).
    const pending = [];
    for await (const write of b.storage.listPendingWrites?.({ prefix: 'uploads/' }) ?? []) pending.push(write);
    expect(pending).toEqual([]);
    expect(reports.reduce((n, r) => n + r.orphanObjects, 0)).toBe(0);
    expect(await service.reconcile()).toEqual(zeros(false));
  });

}

describe('reconcile on MemoryStorage + MemoryUploadStore', () => reconcileSuite(memoryBackend));

describe('reconcile on FileSystemStorage + SqliteUploadStore [sqlite]', () => reconcileSuite(fsBackend));

describe.runIf(pgAvailable)('reconcile on S3Storage + PostgresUploadStore [postgres]', () => {
  beforeAll(async () => {
    await migrate(pool, { schema });
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });
  describeS3('S3Storage', (env) => reconcileSuite(s3Backend(env)));
});
