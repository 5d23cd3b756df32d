/**
 * Crashes: child processes upload through the UploadService (Postgres store) and are SIGKILLed
 * at each point of an upload (after the record, mid-stream, after the save, inside the
 * commit), on the filesystem and on each real S3 server. Then one reconcile() run, and:
 * 0 orphan objects, 0 temp files, 0 claims, 0 open multipart uploads, 0 `uploading` records,
 * 0 stored records without their object, 0 events without a stored file; the uploads that
 * finished are intact.
 */
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Storage } from '../../src/index.js';
import { UploadService } from '../../src/index.js';
import { PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import type { S3Storage } from '../../src/storage/s3/index.js';
import type { Config, CrashPoint } from '../fixtures/crash-child.js';
import { PART, s3Cleanup, s3StorageFor } from '../helpers/s3-fixture.js';
import { runChildKilledAt } from '../helpers/kill-at.js';
import { describeS3, rawClient, type S3TestEnv } from '../helpers/s3-env.js';
import { PG_TEST_URL, testPool } from '../helpers/postgres.js';
import { sha256 } from '../helpers/streams.js';

const url = PG_TEST_URL;
// Probed once here; each suite opens its own pool.
const { pool: probe, available: pgAvailable } = await testPool(1);
if (pgAvailable) await probe.end();
const CHILD = path.resolve(import.meta.dirname, '../fixtures/crash-child.ts');
const POINTS: CrashPoint[] = ['recorded', 'streaming', 'saved', 'committing', 'none'];
const SIZES = [{ name: 'small', bytes: 200 * 1024 }, { name: 'multipart', bytes: 3 * PART + 123 }];

/** Run the child; SIGKILL it when it reports the point. Resolves to what it printed. */
const runChild = (config: Config): Promise<string> => runChildKilledAt(CHILD, { CRASH_CHILD: JSON.stringify(config) }, config.point);

interface Target {
  storage: Storage;
  childStorage: Config['storage'];
  /** Writes left unfinished that the storage itself cannot list: FS temp files by walking, S3 uploads by listing. */
  rawPending(): Promise<string[]>;
  /** What a kill mid-stream leaves: FS a temp file; S3 a claim and a multipart upload once past two parts. */
  pendingMidStream(size: number): number;
  /** How far the server's LastModified may lie ahead of our clock (Swift's s3api rounds it up to the second). */
  clockSlackMs: number;
  cleanup(): Promise<void>;
}

function crashSuite(name: string, makeTarget: () => Promise<Target>): void {
  describe.runIf(pgAvailable)(`${name} [postgres]`, () => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    const schema = `doorito_crash_${randomBytes(4).toString('hex')}`;
    let target: Target;
    let store: PostgresUploadStore;
    beforeAll(async () => {
      await migrate(pool, { schema });
      store = new PostgresUploadStore({ pool, schema });
      target = await makeTarget();
    });
    afterAll(async () => {
      await target.cleanup();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    });

    it('after SIGKILLs at every point, one reconcile() leaves no orphan, no pending write, no half state', async () => {
      const finished: Array<{ id: string; seed: number; size: number }> = [];
      const uploads = new UploadService({ storage: target.storage, repository: store.repository, unitOfWork: store });
      const perPoint: string[] = [];
      let last = { interruptedUploads: 0, pendingWrites: 0, orphanObjects: 0 };
      let seed = 0;
      for (const size of SIZES) {
        for (const point of POINTS) {
          seed += 1;
          const out = await runChild({ pgUrl: url, schema, storage: target.childStorage, size: size.bytes, point, filename: 'same name.bin', seed });
          const done = /DONE (\S+) stored/u.exec(out);
          if (point === 'none') {
            expect(done).not.toBeNull();
            finished.push({ id: done?.[1] ?? '', seed, size: size.bytes });
          }
          // What this kill left, as a dry run counts it (once every object it left is in the past).
          await sleep(target.clockSlackMs);
          const now = await uploads.reconcile({ graceHours: 0, dryRun: true });
          const left = {
            interruptedUploads: now.interruptedUploads - last.interruptedUploads,
            pendingWrites: now.pendingWrites - last.pendingWrites,
            orphanObjects: now.orphanObjects - last.orphanObjects,
          };
          last = now;
          perPoint.push(`${size.name} ${point}: ${JSON.stringify(left)}`);
          expect(left).toEqual({
            interruptedUploads: point === 'none' ? 0 : 1,
            pendingWrites: point === 'streaming' ? target.pendingMidStream(size.bytes) : 0,
            orphanObjects: point === 'saved' || point === 'committing' ? 1 : 0,
          });
        }
      }
      console.log(`crash [${name}] left, per point:\n  ${perPoint.join('\n  ')}`);
      const before = await pool.query(`SELECT status, count(*)::int AS n FROM "${schema}".upload_file GROUP BY status ORDER BY status`);
      const report = await uploads.reconcile({ graceHours: 0 });
      console.log(`crash [${name}]: records before ${JSON.stringify(before.rows)}; reconcile ${JSON.stringify(report)}`);
      expect(report.cursor).toBeUndefined();
      // What the crashes left, and that reconcile saw it: each killed upload left its record.
      expect(report.interruptedUploads).toBe(SIZES.length * (POINTS.length - 1));

      // 0 uploading records; the finished ones stored.
      const { rows: files } = await pool.query(`SELECT id, status, storage_key, sha256, size_bytes FROM "${schema}".upload_file`);
      expect(files.filter((f) => f['status'] === 'uploading')).toEqual([]);
      const stored = files.filter((f) => f['status'] === 'stored');
      expect(stored.map((f) => f['id']).sort()).toEqual(finished.map((f) => f.id).sort());
      // 0 objects no live record owns, and every stored record's object intact.
      const objects: string[] = [];
      for await (const entry of target.storage.list('')) objects.push(entry.key);
      expect(objects.sort()).toEqual(stored.map((f) => String(f['storage_key'])).sort());
      for (const f of stored) {
        expect(await sha256(await target.storage.open(String(f['storage_key'])))).toBe(f['sha256']);
      }
      // 0 pending writes: temp files, claims, multipart uploads.
      const pending = [];
      for await (const write of target.storage.listPendingWrites?.() ?? []) pending.push(write);
      expect(pending).toEqual([]);
      expect(await target.rawPending()).toEqual([]);
      // 0 events without a stored file (and one per stored file).
      const { rows: events } = await pool.query(`SELECT aggregate_id FROM "${schema}".outbox_event WHERE event_type = 'file.stored'`);
      expect(events.map((e) => e['aggregate_id']).sort()).toEqual(stored.map((f) => f['id']).sort());
      // A second run finds nothing more.
      expect(await uploads.reconcile({ graceHours: 0 })).toMatchObject({ interruptedUploads: 0, pendingWrites: 0, orphanObjects: 0, missingObjects: 0 });
    });
  });
}

crashSuite('crash: filesystem', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'doorito-crash-'));
  const location = path.join(root, 'media');
  return {
    storage: new FileSystemStorage({ location }),
    childStorage: { kind: 'fs', location },
    pendingMidStream: () => 1,
    clockSlackMs: 0,
    rawPending: async () => {
      const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
      return entries.filter((e) => e.isFile() && e.name.startsWith('.doorito-')).map((e) => path.join(e.parentPath, e.name));
    },
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

describeS3('crash: S3', (env: S3TestEnv) => {
  crashSuite(`crash: S3 ${env.provider}`, async () => {
    const location = `crash-${randomUUID()}`;
    const client = rawClient(env);
    const storage: S3Storage = s3StorageFor(env, { location });
    return {
      storage,
      childStorage: { kind: 's3', ...env, location },
      // A stream shorter than two parts has not reached the server when it is 75 % read.
      pendingMidStream: (size) => (size > 2 * PART ? 2 : 0),
      clockSlackMs: 1100,
      rawPending: async () => {
        const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: env.bucket, Prefix: `${location}/` }));
        return (uploads.Uploads ?? []).map((u) => `multipart upload ${u.Key}`);
      },
      cleanup: async () => {
        await s3Cleanup(client, env.bucket, `${location}/`);
        storage.destroy();
        client.destroy();
      },
    };
  });
});
