/**
 * N concurrent uploads of one filename through the UploadService give N distinct keys with
 * intact bytes, on every store (memory, SQLite, Postgres) and every storage (memory, the
 * filesystem, S3 on each server, S3 with HEAD-then-write on Ceph). On servers without
 * conditional writes (Swift answers 501 to If-None-Match) the storage's own name check is
 * racy: there, the repository's claim on storage keys is what keeps the uploads apart.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStorage, MemoryUploadStore, UploadService, type FileStoredPayload, type Storage, type UploadFile } from '../../src/index.js';
import { PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import { SqliteUploadStore } from '../../src/sqlite/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import type { S3Storage } from '../../src/storage/s3/index.js';
import { describeS3, rawClient, s3Servers, type S3TestEnv } from '../helpers/s3-env.js';
import { PART, s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { testPool, truncateStore } from '../helpers/postgres.js';
import { patternStream, sha256 } from '../helpers/streams.js';

const N = 10;
const MiB = 1024 * 1024;
const SMALL = 1024;
const MULTIPART = PART + MiB;

// ---- stores -------------------------------------------------------------------------------

type Store = MemoryUploadStore | SqliteUploadStore | PostgresUploadStore;
type StoreKind = 'memory' | 'sqlite' | 'postgres';

const { pool, available: pgAvailable } = await testPool();
const schema = `doorito_keys_${randomBytes(4).toString('hex')}`;

/** A fresh store per test, and how to get rid of it. */
function storeFixture(kind: StoreKind): { store: () => Store; before: () => Promise<void>; after: () => Promise<void> } {
  let current: Store | undefined;
  let dir: string | undefined;
  return {
    store: () => {
      if (current === undefined) throw new Error('no store: beforeEach has not run');
      return current;
    },
    before: async () => {
      if (kind === 'memory') current = new MemoryUploadStore();
      if (kind === 'sqlite') {
        dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-keys-sqlite-'));
        current = new SqliteUploadStore({ database: path.join(dir, 'uploads.db') });
      }
      if (kind === 'postgres') current = new PostgresUploadStore({ pool, schema });
    },
    after: async () => {
      if (current instanceof SqliteUploadStore) await current.close();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
      if (kind === 'postgres') {
        await truncateStore(pool, schema);
      }
      current = undefined;
      dir = undefined;
    },
  };
}

// ---- storages -----------------------------------------------------------------------------

interface StorageUnderTest {
  storage: Storage;
  /** The sha256 of an object read behind the storage's back (raw S3 client, the file on disk). */
  rawSha256?: (key: string) => Promise<string>;
  /** Everything under this test's location, pending writes included, as `object <key>` lines. */
  leftovers: () => Promise<string[]>;
  cleanup: () => Promise<void>;
}

type StorageFactory = () => Promise<StorageUnderTest>;

const memoryStorage: StorageFactory = async () => {
  const storage = new MemoryStorage();
  return {
    storage,
    leftovers: async () => {
      const out: string[] = [];
      for await (const entry of storage.list()) out.push(`object ${entry.key}`);
      for await (const write of storage.listPendingWrites()) out.push(`${write.kind} ${write.key}`);
      return out;
    },
    cleanup: async () => undefined,
  };
};

const fsStorage: StorageFactory = async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-keys-fs-'));
  const storage = new FileSystemStorage({ location: dir });
  const { createReadStream } = await import('node:fs');
  return {
    storage,
    rawSha256: (key) => sha256(createReadStream(path.join(dir, ...key.split('/')))),
    // Every file on disk, temp files included.
    leftovers: async () => {
      const out: string[] = [];
      for (const entry of await readdir(dir, { recursive: true })) {
        if ((await stat(path.join(dir, entry))).isFile()) out.push(`object ${entry.split(path.sep).join('/')}`);
      }
      return out;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
};

const s3Storage =
  (env: S3TestEnv, options: Parameters<typeof s3StorageFor>[1] = {}): StorageFactory =>
  async () => {
    const client = rawClient(env);
    const location = `keys-${randomUUID()}`;
    const storage: S3Storage = s3StorageFor(env, { location, ...options });
    return {
      storage,
      rawSha256: async (key) => {
        const object = await client.send(new GetObjectCommand({ Bucket: env.bucket, Key: `${location}/${key}` }));
        return sha256(object.Body as Readable);
      },
      leftovers: async () => {
        await storage.drain();
        return (await s3Leftovers(client, env.bucket, `${location}/`)).map((line) => line.replace(`${location}/`, ''));
      },
      cleanup: async () => {
        await storage.drain();
        await s3Cleanup(client, env.bucket, `${location}/`);
        storage.destroy();
        client.destroy();
      },
    };
  };

// ---- the scenario -------------------------------------------------------------------------

/** N concurrent uploads of `same.bin`, upload i's content being patternStream(size, i); asserts everything. */
async function concurrentUploads(store: Store, under: StorageUnderTest, size: number): Promise<UploadFile[]> {
  const service = new UploadService({ storage: under.storage, repository: store.repository, unitOfWork: store, maxSizeBytes: 64 * MiB });
  const files = await Promise.all(Array.from({ length: N }, (_, i) => service.createUploadFile({ content: patternStream(size, i), filename: 'same.bin' })));

  expect(files.map((f) => f.status)).toEqual(Array.from({ length: N }, () => 'stored'));
  const keys = files.map((f) => f.storageKey);
  expect(new Set(keys).size).toBe(N);
  for (const key of keys) expect(key).toMatch(/^uploads\/\d{4}\/\d{2}\/same(_[A-Za-z0-9]{7})?\.bin$/u);

  for (const [i, file] of files.entries()) {
    const expected = await sha256(patternStream(size, i));
    expect(file).toMatchObject({ sha256: expected, sizeBytes: size });
    expect(await store.repository.getFile(file.id)).toMatchObject({ status: 'stored', storageKey: file.storageKey, sha256: expected, sizeBytes: size });
    expect(await sha256(await under.storage.open(file.storageKey))).toBe(expected);
    if (under.rawSha256 !== undefined) expect(await under.rawSha256(file.storageKey)).toBe(expected);
  }

  const events = (await store.events()).filter((e) => e.eventType === 'file.stored');
  expect(events).toHaveLength(N);
  const byId = new Map(files.map((f) => [f.id, f]));
  for (const event of events) {
    const payload = event.payload as unknown as FileStoredPayload;
    const file = byId.get(event.aggregateId);
    expect(file).toBeDefined();
    expect(payload).toMatchObject({ file_id: file?.id, storage_key: file?.storageKey, sha256: file?.sha256 });
  }
  expect(new Set(events.map((e) => e.aggregateId)).size).toBe(N);

  // Nothing else under the location: no temp file, claim, multipart upload or stray object.
  expect((await under.leftovers()).sort()).toEqual(keys.map((k) => `object ${k}`).sort());
  return files;
}

interface StorageCase {
  name: string;
  factory: StorageFactory;
  /** What `conditionalWrites` must say after the uploads (S3 only). */
  conditional?: 'supported' | 'unsupported';
}

function storageCases(): Array<{ name: string; cases: (env?: S3TestEnv) => StorageCase[]; s3: boolean }> {
  return [
    { name: 'MemoryStorage', s3: false, cases: () => [{ name: 'MemoryStorage', factory: memoryStorage }] },
    { name: 'FileSystemStorage', s3: false, cases: () => [{ name: 'FileSystemStorage', factory: fsStorage }] },
    {
      name: 'S3Storage',
      s3: true,
      cases: (env) => {
        if (env === undefined) return [];
        const swift = env.provider === 'swift';
        const out: StorageCase[] = [{ name: 'S3Storage', factory: s3Storage(env), conditional: swift ? 'unsupported' : 'supported' }];
        if (env.provider === 'ceph-rgw') {
          out.push({ name: "S3Storage noOverwrite: 'head'", factory: s3Storage(env, { noOverwrite: 'head' }), conditional: 'unsupported' });
        }
        return out;
      },
    },
  ];
}

/** The store that also runs the multipart-sized uploads, per storage (one store each keeps the run short). */
const MULTIPART_STORE: Record<string, StoreKind> = { MemoryStorage: 'memory', FileSystemStorage: 'sqlite', S3Storage: 'postgres' };

function suite(kind: StoreKind): void {
  const fixture = storeFixture(kind);
  beforeEach(fixture.before);
  afterEach(fixture.after);

  const define = (c: StorageCase, family: string) => {
    describe(c.name, () => {
      let under: StorageUnderTest | undefined;
      afterEach(async () => {
        await under?.cleanup();
        under = undefined;
      });
      const sizes: Array<[string, number]> = [['1 KiB', SMALL]];
      if (MULTIPART_STORE[family] === kind) sizes.push([`multipart-sized (PART + 1 MiB)`, MULTIPART]);
      for (const [label, size] of sizes) {
        it(`${N} concurrent uploads of one filename (${label}) give ${N} distinct keys with intact bytes`, async () => {
          under = await c.factory();
          await concurrentUploads(fixture.store(), under, size);
          if (c.conditional !== undefined) expect((under.storage as S3Storage).conditionalWrites).toBe(c.conditional);
        });
      }
    });
  };

  for (const family of storageCases()) {
    if (family.s3) describeS3(family.name, (env) => family.cases(env).forEach((c) => define(c, family.name)));
    else family.cases().forEach((c) => define(c, family.name));
  }
}

describe('concurrent uploads of one filename, MemoryUploadStore', () => suite('memory'));

describe('concurrent uploads of one filename, SqliteUploadStore [sqlite]', () => suite('sqlite'));

describe.runIf(pgAvailable)('concurrent uploads of one filename, PostgresUploadStore [postgres]', () => {
  beforeAll(async () => {
    await migrate(pool, { schema });
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });
  suite('postgres');
});

const swift = s3Servers().find((env) => env.provider === 'swift');
describe.runIf(swift !== undefined)('the repository claim keeps concurrent uploads apart where the storage cannot [swift]', () => {
  let under: StorageUnderTest | undefined;
  afterEach(async () => {
    await under?.cleanup();
    under = undefined;
  });

  it('gives distinct keys through the service, where bare HEAD-then-write saves of one name may collide', async () => {
    under = await s3Storage(swift as S3TestEnv)();
    const storage = under.storage as S3Storage;
    // The storage alone: N concurrent saves of one name. Without conditional writes they may
    // land on one key, the later replacing the earlier; that is allowed here, and not asserted.
    const bare = await Promise.all(Array.from({ length: N }, (_, i) => storage.save('bare/same.bin', patternStream(SMALL, 100 + i))));
    const bareKeys = new Set(bare.map((r) => r.key));
    console.info(`[swift] ${N} bare concurrent saves of one name got ${bareKeys.size} distinct keys`);
    expect(storage.conditionalWrites).toBe('unsupported');
    for (const key of bareKeys) await storage.delete(key);

    // Through the service, whose repository holds a UNIQUE claim on keys: always N distinct keys.
    await concurrentUploads(new MemoryUploadStore(), under, SMALL);
    expect(storage.conditionalWrites).toBe('unsupported');
  });
});
