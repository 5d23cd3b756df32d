/**
 * 9–10. Expired-file cleanup: `UploadService.cleanupExpiredUploadFiles()` run until nothing
 * expired remains, vs the same work done by hand in this same run.
 *
 * 9. SQLite and Postgres, objects in a FileSystemStorage: BENCH_CLEANUP_FILES (10,000) expired
 *    `stored` files on a fresh database (file or schema) per run. Baseline: per page of 1,000,
 *    one SELECT, every unlink at once (`fs.promises.unlink`), one DELETE.
 * 10. S3 (the local server): BENCH_CLEANUP_S3_FILES (2,000) expired files, records on SQLite.
 *    Baselines with the raw SDK: DeleteObjects of 1,000 keys (the least the work can cost), and
 *    one DeleteObject per key, one at a time (what a per-file cleanup does) and 16 at a time, on
 *    a quarter as many files (their rate does not depend on the count, and putting the objects
 *    is most of this section's time). BENCH_CLEANUP_S3_ROUNDS rounds (default 3, at most
 *    BENCH_ROUNDS), after a warm-up round of 200 files each.
 *
 * BENCH_CLEANUP=local or =s3 runs one section only.
 *
 * Seeding rows and objects is setup, outside the timing; every run checks afterwards that every
 * object and record is gone. Runs are interleaved (the order rotated each round), medians shown.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Storage, UnitOfWork, UploadFile, UploadRepository } from '../src/index.js';
import { UploadService } from '../src/index.js';
import { PostgresUploadStore, migrate } from '../src/postgres/index.js';
import { SqliteUploadStore } from '../src/sqlite/index.js';
import { FileSystemStorage } from '../src/storage/fs/index.js';
import { rawClient } from '../test/helpers/s3-client.js';
import { benchStorage, createBenchBucket, deleteBenchBucket } from './s3-bucket.js';
import { ROUNDS, fmt, gc, heading, median, note, stop, table, timed, type S3Settings, type Sample } from './util.js';

const FILES = Number(process.env['BENCH_CLEANUP_FILES'] ?? 10_000);
const S3_FILES = Number(process.env['BENCH_CLEANUP_S3_FILES'] ?? 2_000);
const S3_SINGLE_FILES = Math.max(100, Math.round(S3_FILES / 4));
const S3_WARM_FILES = 200;
const S3_ROUNDS = Math.max(1, Number(process.env['BENCH_CLEANUP_S3_ROUNDS'] ?? Math.min(ROUNDS, 3)));
/** Which parts run: `local` (section 9), `s3` (section 10). */
const PARTS = (process.env['BENCH_CLEANUP'] ?? 'local,s3').split(',');
const PAGE = 1000;
const HOUR = 3600_000;
/** Where the files' objects are: the default key template's directory. */
const KEY_DIR = 'uploads/2026/11';
/** Past the default TTL (24 h). */
const EXPIRED = () => new Date(Date.now() - 48 * HOUR);

/** One run of a variant: its setup is done, `run` is timed, `done` cleans up and checks. */
interface Prepared {
  run: () => Promise<void>;
  done: () => Promise<void>;
}

interface Variant {
  name: string;
  prepare: (tag: string) => Promise<Prepared>;
}

/** A warm-up round (tag 'w'), then `count` rounds of every variant, the order rotated each round; only `run` is timed. */
async function rounds(variants: Variant[], count = ROUNDS): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  for (let round = -1; round < count; round += 1) {
    const shift = Math.max(0, round) % variants.length;
    for (const variant of [...variants.slice(shift), ...variants.slice(0, shift)]) {
      stop.signal.throwIfAborted();
      const prepared = await variant.prepare(round < 0 ? 'w' : String(round));
      gc();
      let sample: Sample;
      try {
        sample = await timed(prepared.run);
      } finally {
        await prepared.done();
      }
      console.error(`  ${variant.name} ${round < 0 ? 'warm-up' : `round ${round + 1}`}: ${fmt(sample.ms, 0)} ms`);
      if (round >= 0) samples.get(variant.name)?.push(sample);
    }
  }
  return samples;
}

const record = (key: string, createdAt: Date): UploadFile => ({
  id: randomUUID(),
  storageKey: key,
  originalFilename: 'report.txt',
  contentType: 'text/plain',
  sizeBytes: 64,
  sha256: '',
  metadata: {},
  status: 'stored',
  createdAt,
  updatedAt: createdAt,
});

const keysOf = (count: number, prefix = KEY_DIR) => Array.from({ length: count }, () => `${prefix}/${randomUUID()}.txt`);

/** Run `task` on every item, `limit` at a time. */
async function limited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Ours: call until nothing expired remains, as a scheduled job would. Works on the result of
 * the per-file implementation too (`{ deleted, remaining }`), for a before/after comparison.
 */
async function cleanUp(uploads: UploadService, expected: number): Promise<void> {
  let deleted = 0;
  for (;;) {
    const report: { deleted: number; remaining: number; failures?: unknown[] } = await uploads.cleanupExpiredUploadFiles({ batchSize: 10_000 });
    if ((report.failures?.length ?? 0) > 0) throw new Error(`cleanup failures: ${String(report.failures?.length)}`);
    deleted += report.deleted;
    if (report.remaining === 0) break;
    if (report.deleted === 0) throw new Error(`cleanup is stuck with ${report.remaining} remaining`);
  }
  if (deleted !== expected) throw new Error(`cleanup deleted ${deleted} files, expected ${expected}`);
}

const service = (storage: Storage, store: { repository: UploadRepository } & UnitOfWork) =>
  new UploadService({ storage, repository: store.repository, unitOfWork: store });

/** The objects: plain small files, written 64 at a time. */
async function writeObjects(root: string, keys: readonly string[]): Promise<void> {
  await mkdir(path.join(root, KEY_DIR), { recursive: true });
  const body = Buffer.alloc(64, 'x');
  await limited(keys, 64, (key) => writeFile(path.join(root, key), body));
}

async function checkEmpty(root: string, remainingRows: number): Promise<void> {
  // The storage may remove the emptied directory too.
  const left = await readdir(path.join(root, KEY_DIR)).catch((error: unknown) => {
    if ((error as { code?: unknown }).code === 'ENOENT') return [];
    throw error;
  });
  if (left.length > 0 || remainingRows > 0) throw new Error(`after the cleanup: ${left.length} objects and ${remainingRows} records left`);
}

function fsVariants(pool: pg.Pool, dir: string): Variant[] {
  const sqlite = async (tag: string, name: string) => {
    const root = await mkdtemp(path.join(dir, `sqlite-${name}-${tag}-`));
    const db = new Database(path.join(root, 'uploads.sqlite3'));
    const store = new SqliteUploadStore({ database: db });
    const keys = keysOf(FILES);
    const createdAt = EXPIRED();
    await store.transaction(async (tx) => {
      for (const key of keys) await tx.repository.createFile(record(key, createdAt));
    });
    await writeObjects(root, keys);
    const done = async () => {
      const rows = Number(db.prepare('SELECT count(*) AS n FROM upload_file').pluck().get());
      await store.close();
      db.close();
      await checkEmpty(root, rows);
      await rm(root, { recursive: true, force: true });
    };
    return { root, db, store, done };
  };
  const postgres = async (tag: string, name: string) => {
    const root = await mkdtemp(path.join(dir, `postgres-${name}-${tag}-`));
    const schema = `doorito_bench_cleanup_${randomBytes(4).toString('hex')}`;
    await migrate(pool, { schema });
    const store = new PostgresUploadStore({ pool, schema });
    const keys = keysOf(FILES);
    // One INSERT for all of them (createFile in a transaction is three statements a file: SAVEPOINT, INSERT, RELEASE).
    await pool.query(
      `INSERT INTO "${schema}".upload_file (id, storage_key, original_filename, content_type, size_bytes, status, created_at, updated_at)
       SELECT gen_random_uuid(), key, 'report.txt', 'text/plain', 64, 'stored', $2, $2 FROM unnest($1::text[]) AS key`,
      [keys, EXPIRED()],
    );
    await writeObjects(root, keys);
    const done = async () => {
      const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".upload_file`);
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await checkEmpty(root, rows[0]?.n ?? -1);
      await rm(root, { recursive: true, force: true });
    };
    return { root, schema, store, done };
  };
  const cutoff = () => new Date(Date.now() - 24 * HOUR);
  return [
    {
      name: 'sqlite ours',
      prepare: async (tag) => {
        const s = await sqlite(tag, 'ours');
        const uploads = service(new FileSystemStorage({ location: s.root }), s.store);
        return { run: () => cleanUp(uploads, FILES), done: s.done };
      },
    },
    {
      name: 'sqlite baseline',
      prepare: async (tag) => {
        const s = await sqlite(tag, 'base');
        const select = s.db.prepare('SELECT id, storage_key FROM upload_file WHERE created_at < ? ORDER BY created_at, id LIMIT ?');
        const remove = s.db.prepare('DELETE FROM upload_file WHERE id IN (SELECT value FROM json_each(?))');
        const run = async () => {
          for (;;) {
            const rows = select.all(cutoff().getTime(), PAGE) as Array<{ id: string; storage_key: string }>;
            if (rows.length === 0) return;
            await Promise.all(rows.map((row) => unlink(path.join(s.root, row.storage_key))));
            remove.run(JSON.stringify(rows.map((row) => row.id)));
          }
        };
        return { run, done: s.done };
      },
    },
    {
      name: 'postgres ours',
      prepare: async (tag) => {
        const s = await postgres(tag, 'ours');
        const uploads = service(new FileSystemStorage({ location: s.root }), s.store);
        return { run: () => cleanUp(uploads, FILES), done: s.done };
      },
    },
    {
      name: 'postgres baseline',
      prepare: async (tag) => {
        const s = await postgres(tag, 'base');
        const run = async () => {
          for (;;) {
            const { rows } = await pool.query<{ id: string; storage_key: string }>(
              `SELECT id, storage_key FROM "${s.schema}".upload_file WHERE created_at < $1 ORDER BY created_at, id LIMIT $2`,
              [cutoff(), PAGE],
            );
            if (rows.length === 0) return;
            await Promise.all(rows.map((row) => unlink(path.join(s.root, row.storage_key))));
            await pool.query(`DELETE FROM "${s.schema}".upload_file WHERE id = ANY($1::uuid[])`, [rows.map((row) => row.id)]);
          }
        };
        return { run, done: s.done };
      },
    },
  ];
}

function s3Variants(settings: S3Settings, client: S3Client, bucket: string): Variant[] {
  /** Put `count` small objects (fewer in the warm-up) under a prefix of their own, 32 at a time; `check` says none is left. */
  const objects = async (tag: string, name: string, count: number) => {
    const prefix = `cleanup-${name}-${tag}-${randomBytes(3).toString('hex')}`;
    const keys = keysOf(tag === 'w' ? S3_WARM_FILES : count, `${prefix}/${KEY_DIR}`);
    const body = Buffer.alloc(64, 'x');
    await limited(keys, 32, (key) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body })));
    const check = async () => {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }));
      if ((listed.KeyCount ?? 0) > 0) throw new Error(`after the cleanup: objects left under ${prefix}/`);
    };
    return { keys, check };
  };
  const deleteOne = (key: string) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  return [
    {
      name: 'ours',
      prepare: async (tag) => {
        const { keys, check } = await objects(tag, 'ours', S3_FILES);
        const store = new SqliteUploadStore({ database: ':memory:' });
        const createdAt = EXPIRED();
        await store.transaction(async (tx) => {
          for (const key of keys) await tx.repository.createFile(record(key, createdAt));
        });
        const storage = benchStorage(settings, bucket);
        const uploads = service(storage, store);
        const done = async () => {
          storage.destroy();
          await store.close();
          await check();
        };
        return { run: () => cleanUp(uploads, keys.length), done };
      },
    },
    {
      name: 'DeleteObjects',
      prepare: async (tag) => {
        const { keys, check } = await objects(tag, 'batch', S3_FILES);
        const run = async () => {
          for (let i = 0; i < keys.length; i += PAGE) {
            // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html (Quiet: only failures are listed)
            const result = await client.send(
              new DeleteObjectsCommand({ Bucket: bucket, Delete: { Quiet: true, Objects: keys.slice(i, i + PAGE).map((Key) => ({ Key })) } }),
            );
            if ((result.Errors?.length ?? 0) > 0) throw new Error(`DeleteObjects: ${JSON.stringify(result.Errors?.[0])}`);
          }
        };
        return { run, done: check };
      },
    },
    {
      name: 'DeleteObject x1',
      prepare: async (tag) => {
        const { keys, check } = await objects(tag, 'one', S3_SINGLE_FILES);
        return { run: () => limited(keys, 1, deleteOne), done: check };
      },
    },
    {
      name: 'DeleteObject x16',
      prepare: async (tag) => {
        const { keys, check } = await objects(tag, 'sixteen', S3_SINGLE_FILES);
        return { run: () => limited(keys, 16, deleteOne), done: check };
      },
    },
  ];
}

const perSecond = (samples: Sample[] | undefined, files: number) => median((samples ?? []).map((s) => (files * 1000) / s.ms));
const range = (samples: Sample[] | undefined, files: number) => {
  const rates = (samples ?? []).map((s) => (files * 1000) / s.ms);
  return `${fmt(Math.min(...rates), 0)}–${fmt(Math.max(...rates), 0)}`;
};
const cpuPerThousand = (samples: Sample[] | undefined, files: number) => fmt((median((samples ?? []).map((s) => s.cpuMs)) * 1000) / files, 0);

export async function benchCleanup(settings: S3Settings): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-bench-cleanup-'));
  const pool = new pg.Pool({ connectionString: process.env['PG_TEST_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', max: 8 });
  // A request the server never answers fails the run instead of hanging it (the SDK only warns by default).
  const client = rawClient(settings, { requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000, throwOnRequestTimeout: true } });
  let bucket: string | undefined;
  try {
    if (PARTS.includes('local')) await benchLocal(pool, dir);
    if (PARTS.includes('s3')) {
      bucket = await createBenchBucket(client);
      await benchS3(settings, client, bucket);
    }
  } finally {
    if (bucket !== undefined) await deleteBenchBucket(client, bucket).catch(() => undefined);
    client.destroy();
    await pool.end();
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchLocal(pool: pg.Pool, dir: string): Promise<void> {
  const local = await rounds(fsVariants(pool, dir));
  heading(11, `Expired-file cleanup, ${FILES} stored files, objects in a FileSystemStorage (median of ${ROUNDS}, files/s)`);
  table(
    ['store', 'variant', 'files/s', 'range', 'ours ÷ baseline', 'CPU ms / 1000 files'],
    ['sqlite', 'postgres'].flatMap((store) =>
      ['ours', 'baseline'].map((variant) => {
        const samples = local.get(`${store} ${variant}`);
        const ratio = perSecond(local.get(`${store} ours`), FILES) / perSecond(local.get(`${store} baseline`), FILES);
        return [
          store,
          variant === 'ours' ? 'cleanupExpiredUploadFiles()' : `by hand: SELECT, unlinks, DELETE per ${PAGE}`,
          fmt(perSecond(samples, FILES), 0),
          range(samples, FILES),
          variant === 'ours' ? `${fmt(ratio, 2)}x` : '',
          cpuPerThousand(samples, FILES),
        ];
      }),
    ),
  );
  note(`Ours: { batchSize: 10000 } until remaining is 0 (pages of ${PAGE}: findFiles, storage.deleteMany, repository.deleteFiles; then countFiles). A fresh database file / schema per run.`);
}

async function benchS3(settings: S3Settings, client: S3Client, bucket: string): Promise<void> {
  const s3 = await rounds(s3Variants(settings, client, bucket), S3_ROUNDS);
  const ours = perSecond(s3.get('ours'), S3_FILES);
  heading(12, `Expired-file cleanup on S3 (${settings.endpoint}), records on SQLite (median of ${S3_ROUNDS}, files/s)`);
  const labels: Record<string, [string, number]> = {
    ours: ['cleanupExpiredUploadFiles() on S3Storage', S3_FILES],
    DeleteObjects: [`raw DeleteObjects, ${PAGE} keys a request`, S3_FILES],
    'DeleteObject x1': ['raw DeleteObject per key, one at a time', S3_SINGLE_FILES],
    'DeleteObject x16': ['raw DeleteObject per key, 16 at a time', S3_SINGLE_FILES],
  };
  table(
    ['variant', 'files', 'files/s', 'range', 'ours ÷ this', 'CPU ms / 1000 files'],
    Object.entries(labels).map(([name, [label, files]]) => {
      const samples = s3.get(name);
      const r = perSecond(samples, files);
      return [label, String(files), fmt(r, 0), range(samples, files), name === 'ours' ? '' : `${fmt(ours / r, 2)}x`, cpuPerThousand(samples, files)];
    }),
  );
  note('Putting the objects and records is setup, not timed; every run checks that no object is left under its prefix.');
}
