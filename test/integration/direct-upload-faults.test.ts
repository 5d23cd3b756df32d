/**
 * Direct uploads under faults and crashes, on a real Postgres store and each real S3 server.
 * Faults are injected by a proxy between the app (and the client's PUTs) and the server: a lost
 * answer to CompleteMultipartUpload, an outage of it, a read-back that gets no answer, a lost or reset client
 * PUT; and by a transaction that fails to commit. Crashes are SIGKILLs of a child process inside
 * completeDirectUpload(): after the join, mid-read, inside the commit.
 *
 * After every one: the record is `uploading` with no event (or `stored` with exactly one), the
 * client (or the app) can call complete again and gets `stored` with the sha256 of the bytes, and
 * nothing is left but the stored object; an upload nobody completes again is failed as expired by
 * maintenance after its deadline, with nothing left at all.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DIRECT_UPLOAD_COMPLETE_GRACE_MS,
  UploadService,
  isDirectUploadIncompleteError,
  isUploadFailedError,
  type PresignedUpload,
  type UnitOfWork,
  type UploadFile,
  type UploadServiceOptions,
} from '../../src/index.js';
import { PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import type { S3Storage } from '../../src/storage/s3/index.js';
import type { DirectCrashConfig, DirectCrashPoint } from '../fixtures/direct-complete-child.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { PG_TEST_URL, testPool, truncateStore } from '../helpers/postgres.js';
import { runChildKilledAt } from '../helpers/kill-at.js';
import { describeS3, rawClient, type S3TestEnv } from '../helpers/s3-env.js';
import { s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { fetchUpload } from '../helpers/upload-route.js';

const MiB = 1024 * 1024;
const CHILD = path.resolve(import.meta.dirname, '../fixtures/direct-complete-child.ts');
const { pool: probe, available: pgAvailable } = await testPool(1);
if (pgAvailable) await probe.end();

const bytes = (size: number, seed: number): Buffer => {
  const out = randomBytes(size);
  out[0] = seed & 0xff;
  return out;
};
const sha256 = (body: Buffer): string => createHash('sha256').update(body).digest('hex');
const md5 = (body: Buffer): string => createHash('md5').update(body).digest('base64');

/** Run the child; SIGKILL it when it reports the point. Resolves to what it printed. */
const runChild = (config: DirectCrashConfig): Promise<string> => runChildKilledAt(CHILD, { DIRECT_CHILD: JSON.stringify(config) }, config.point);

describeS3('direct uploads under faults and crashes', (env: S3TestEnv) => {
  describe.runIf(pgAvailable)('Postgres store', () => {
    const client = rawClient(env);
    const pool = new pg.Pool({ connectionString: PG_TEST_URL, max: 4 });
    const schema = `doorito_direct_${randomBytes(4).toString('hex')}`;
    const store = new PostgresUploadStore({ pool, schema });
    let proxy: FaultProxy;
    let location: string;
    let storage: S3Storage;
    /** When set, the next commit's transaction fails after its last statement (Postgres rolls it back). */
    let failNextCommit = false;
    const unitOfWork: UnitOfWork = {
      transaction: async (fn) =>
        store.transaction(async (tx) => {
          const result = await fn(tx);
          if (failNextCommit) {
            failNextCommit = false;
            throw new Error('injected: the connection broke before COMMIT');
          }
          return result;
        }),
    };
    const service = (clock: () => Date = () => new Date(), options: UploadServiceOptions = {}) =>
      new UploadService({ storage, repository: store.repository, unitOfWork, clock, maxSizeBytes: 64 * MiB, multipartThreshold: 8 * MiB, ...options });

    beforeAll(async () => {
      await migrate(pool, { schema });
      proxy = await FaultProxy.start(env.endpoint);
    });
    afterAll(async () => {
      await proxy.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
      client.destroy();
    });
    beforeEach(() => {
      location = `direct-faults-${randomUUID()}`;
      // Through the proxy: the app's requests and, since the URLs are signed for its endpoint, the client's PUTs.
      storage = s3StorageFor(env, { endpoint: proxy.endpoint, location, idleTimeout: 1000, requestTimeout: 20_000 });
    });
    afterEach(async () => {
      proxy.clear();
      failNextCommit = false;
      storage.destroy();
      await s3Cleanup(client, env.bucket, `${location}/`);
      await truncateStore(pool, schema);
    });

    const leftovers = () => s3Leftovers(client, env.bucket, `${location}/`);
    const row = async (id: string) => {
      const { rows } = await pool.query(`SELECT status, error_code, sha256, size_bytes, direct_upload FROM "${schema}".upload_file WHERE id = $1`, [id]);
      const { rows: events } = await pool.query(`SELECT event_type, payload FROM "${schema}".outbox_event WHERE aggregate_id = $1`, [id]);
      return { ...(rows[0] as { status: string; error_code: string | null; sha256: string | null; size_bytes: string; direct_upload: unknown }), events: events as Array<{ event_type: string; payload: Record<string, unknown> }> };
    };
    /** Still uploading, no event, and complete again (the client's retry) stores the bytes with one event. */
    const recovers = async (uploads: UploadService, file: UploadFile, body: Buffer) => {
      expect(await row(file.id)).toMatchObject({ status: 'uploading', events: [] });
      const stored = await uploads.completeDirectUpload(file.id);
      expect(stored).toMatchObject({ status: 'stored', sha256: sha256(body), sizeBytes: body.length });
      const after = await row(file.id);
      expect(after.events.map((e) => e.event_type)).toEqual(['file.stored']);
      expect(after.events[0]?.payload).toMatchObject({ file_id: file.id, sha256: sha256(body) });
      expect(await leftovers()).toEqual([`object ${location}/${file.storageKey}`]);
      return stored;
    };

    /** Initiate a 2-part multipart direct upload and send both parts. */
    const sentMultipart = async (uploads: UploadService, seed: number) => {
      const body = bytes(9 * MiB + 321, seed);
      const { file, upload } = await uploads.createDirectUpload({ filename: `big ${seed}.bin`, size: body.length });
      expect(upload).toMatchObject({ method: 'multipart', partSize: 8 * MiB, partCount: 2 });
      const parts = await uploads.presignDirectUploadParts(file.id, [1, 2]);
      const statuses = await Promise.all(parts.map((part) => fetchUpload(part, body.subarray((part.partNumber - 1) * 8 * MiB, part.partNumber * 8 * MiB))));
      expect(statuses).toEqual([200, 200]);
      return { file, body };
    };
    const sentPut = async (uploads: UploadService, seed: number) => {
      const body = bytes(300_000, seed);
      const { file, upload } = await uploads.createDirectUpload({ filename: `small ${seed}.bin`, size: body.length, md5: md5(body) });
      expect(await fetchUpload(upload as PresignedUpload, body)).toBe(200);
      return { file, body };
    };

    it('round trip on Postgres: PUT and multipart reach stored, the record and its file.stored committed together', async () => {
      const uploads = service();
      for (const sent of [await sentPut(uploads, 1), await sentMultipart(uploads, 2)]) {
        expect(await row(sent.file.id)).toMatchObject({ status: 'uploading', events: [], sha256: '' });
        await uploads.completeDirectUpload(sent.file.id);
        const stored = await row(sent.file.id);
        expect(stored).toMatchObject({ status: 'stored', sha256: sha256(sent.body), size_bytes: String(sent.body.length) });
        expect(stored.direct_upload).toMatchObject({ method: sent.body.length > MiB ? 'multipart' : 'put', size: sent.body.length });
        const url = stored.events[0]?.payload['url'] as string;
        expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(sent.body));
      }
    });

    it('the answer to CompleteMultipartUpload is lost on every attempt: the join happened, so complete stores it', async () => {
      const uploads = service();
      const { file, body } = await sentMultipart(uploads, 3);
      const lost = proxy.inject({ op: 'CompleteMultipartUpload', fault: { kind: 'lose-response' }, times: Infinity });
      const stored = await uploads.completeDirectUpload(file.id);
      expect(lost.fired).toBeGreaterThanOrEqual(1);
      expect(stored).toMatchObject({ status: 'stored', sha256: sha256(body) });
      expect((await row(file.id)).events).toHaveLength(1);
      expect(await leftovers()).toEqual([`object ${location}/${file.storageKey}`]);
    });

    it('an outage of CompleteMultipartUpload (503 on every attempt): complete fails typed and changes nothing; after it, complete stores', async () => {
      const uploads = service();
      const { file, body } = await sentMultipart(uploads, 4);
      const outage = proxy.inject({ op: 'CompleteMultipartUpload', fault: { kind: 'status', status: 503, code: 'ServiceUnavailable' }, times: Infinity });
      const error = await uploads.completeDirectUpload(file.id).catch((e: unknown) => e);
      expect(isUploadFailedError(error)).toBe(true);
      expect((error as Error).message).toContain('complete it again');
      expect((error as Error).cause).toBeDefined();
      expect(outage.fired).toBeGreaterThanOrEqual(1);
      // The parts are still there, waiting: nothing was lost.
      expect((await uploads.listDirectUploadParts(file.id)).map((p) => p.partNumber)).toEqual([1, 2]);
      outage.remove();
      await recovers(uploads, file, body);
    });

    it('the read-back loses its answer on every attempt: complete fails typed, still uploading; then it stores', async () => {
      const uploads = service();
      const { file, body } = await sentPut(uploads, 5);
      const reset = proxy.inject({ op: 'GetObject', fault: { kind: 'lose-response' }, times: Infinity });
      const error = await uploads.completeDirectUpload(file.id).catch((e: unknown) => e);
      expect(isUploadFailedError(error)).toBe(true);
      expect(reset.fired).toBeGreaterThanOrEqual(1);
      reset.remove();
      await recovers(uploads, file, body);
    });

    it("the client's PUT: its answer lost, the bytes arrived and complete stores them; reset mid-body, nothing arrived until the retry", async () => {
      const uploads = service();
      const lostBody = bytes(300_000, 6);
      const lost = await uploads.createDirectUpload({ filename: 'lost answer.bin', size: lostBody.length });
      proxy.inject({ op: 'PutObject', fault: { kind: 'lose-response' } });
      await expect(fetchUpload(lost.upload as PresignedUpload, lostBody)).rejects.toThrow();
      expect((await uploads.completeDirectUpload(lost.file.id)).sha256).toBe(sha256(lostBody));

      const resetBody = bytes(300_000, 7);
      const reset = await uploads.createDirectUpload({ filename: 'reset.bin', size: resetBody.length });
      proxy.inject({ op: 'PutObject', fault: { kind: 'reset-after', bytes: 64 * 1024 } });
      await expect(fetchUpload(reset.upload as PresignedUpload, resetBody)).rejects.toThrow();
      expect(isDirectUploadIncompleteError(await uploads.completeDirectUpload(reset.file.id).catch((e: unknown) => e))).toBe(true);
      expect(await fetchUpload(reset.upload as PresignedUpload, resetBody)).toBe(200);
      expect((await uploads.completeDirectUpload(reset.file.id)).sha256).toBe(sha256(resetBody));
    });

    it('the commit fails (Postgres rolls back the record and the event): complete fails typed, the object is kept; complete again stores it once', async () => {
      const uploads = service();
      for (const sent of [await sentPut(uploads, 8), await sentMultipart(uploads, 9)]) {
        failNextCommit = true;
        const error = await uploads.completeDirectUpload(sent.file.id).catch((e: unknown) => e);
        expect(isUploadFailedError(error)).toBe(true);
        expect(((error as Error).cause as Error).message).toContain('injected');
        expect((await storage.stat(sent.file.storageKey)).size).toBe(sent.body.length);
        expect(await row(sent.file.id)).toMatchObject({ status: 'uploading', events: [] });
        expect((await uploads.completeDirectUpload(sent.file.id)).sha256).toBe(sha256(sent.body));
        expect((await row(sent.file.id)).events).toHaveLength(1);
      }
    });

    it("directUploadVerify 'etag': a PUT whose MD5 the server checked completes without reading the object back; anything else is read", async () => {
      const uploads = service(undefined, { directUploadVerify: 'etag' });
      const body = bytes(300_000, 40);
      const proven = await uploads.createDirectUpload({ filename: 'proven.bin', size: body.length, md5: md5(body), sha256: sha256(body) });
      expect(await fetchUpload(proven.upload as PresignedUpload, body)).toBe(200);
      const reads = proxy.count('GetObject');
      expect((await uploads.completeDirectUpload(proven.file.id)).sha256).toBe(sha256(body));
      expect(proxy.count('GetObject')).toBe(reads);
      expect((await row(proven.file.id)).events[0]?.payload).toMatchObject({ sha256: sha256(body) });

      // No MD5 declared, or multipart (its ETag is no MD5): the object is read to hash it.
      const unproven = await uploads.createDirectUpload({ filename: 'unproven.bin', size: body.length, sha256: sha256(body) });
      expect(await fetchUpload(unproven.upload as PresignedUpload, body)).toBe(200);
      expect((await uploads.completeDirectUpload(unproven.file.id)).sha256).toBe(sha256(body));
      expect(proxy.count('GetObject')).toBe(reads + 1);
      const big = await sentMultipart(uploads, 41);
      expect((await uploads.completeDirectUpload(big.file.id)).sha256).toBe(sha256(big.body));
      expect(proxy.count('GetObject')).toBe(reads + 2);
      // Declared, but not these bytes: the read catches it.
      const other = await uploads.createDirectUpload({ filename: 'other.bin', size: body.length, sha256: sha256(bytes(body.length, 42)) });
      expect(await fetchUpload(other.upload as PresignedUpload, body)).toBe(200);
      expect(await uploads.completeDirectUpload(other.file.id)).toMatchObject({ status: 'failed', errorCode: 'checksum_mismatch' });
      expect(() => service(undefined, { directUploadVerify: 'trust' as 'etag' })).toThrow(/directUploadVerify must be/u);
    });

    const childConfig = (fileId: string, point: DirectCrashPoint): DirectCrashConfig => ({
      pgUrl: PG_TEST_URL,
      schema,
      storage: { endpoint: env.endpoint, region: env.region, accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey, bucket: env.bucket, location },
      fileId,
      point,
    });

    it('SIGKILL inside complete (after the join, mid-read, inside the commit): nothing recorded, and complete again stores it once', async () => {
      const uploads = service();
      const cases: Array<{ point: DirectCrashPoint; multipart: boolean }> = [
        { point: 'joined', multipart: true },
        { point: 'hashing', multipart: true },
        { point: 'committing', multipart: true },
        { point: 'hashing', multipart: false },
        { point: 'committing', multipart: false },
      ];
      const seen: string[] = [];
      let seed = 10;
      for (const { point, multipart } of cases) {
        seed += 1;
        const sent = multipart ? await sentMultipart(uploads, seed) : await sentPut(uploads, seed);
        await runChild(childConfig(sent.file.id, point));
        expect(await row(sent.file.id)).toMatchObject({ status: 'uploading', events: [] });
        const stored = await uploads.completeDirectUpload(sent.file.id);
        expect(stored).toMatchObject({ status: 'stored', sha256: sha256(sent.body) });
        expect((await row(sent.file.id)).events).toHaveLength(1);
        seen.push(`${multipart ? 'multipart' : 'put'} killed ${point}: completed again, stored`);
      }
      const stored = await pool.query(`SELECT storage_key FROM "${schema}".upload_file WHERE status = 'stored'`);
      expect((await leftovers()).sort()).toEqual(stored.rows.map((r) => `object ${location}/${String(r['storage_key'])}`).sort());
      console.log(`direct crash [${env.provider}]:\n  ${seen.join('\n  ')}`);
    });

    it('SIGKILL mid-complete and never completed again: after its deadline, maintenance fails it as expired and leaves nothing', async () => {
      let now = Date.now();
      const uploads = service(() => new Date(now));
      const joined = await sentMultipart(uploads, 30);
      await runChild(childConfig(joined.file.id, 'joined'));
      const reading = await sentPut(uploads, 31);
      await runChild(childConfig(reading.file.id, 'hashing'));
      // Before the deadline, maintenance leaves both alone.
      expect(await uploads.reconcile({ graceHours: 0 })).toMatchObject({ interruptedUploads: 0, orphanObjects: 0 });
      expect((await leftovers()).length).toBe(2);
      now = (joined.file.directUpload?.expiresAt.getTime() ?? 0) + DIRECT_UPLOAD_COMPLETE_GRACE_MS + 1000;
      const report = await uploads.reconcile({ graceHours: 0 });
      expect(report.interruptedUploads).toBe(2);
      for (const sent of [joined, reading]) expect(await row(sent.file.id)).toMatchObject({ status: 'failed', error_code: 'expired', events: [] });
      expect(await leftovers()).toEqual([]);
      expect(await uploads.reconcile({ graceHours: 0 })).toMatchObject({ interruptedUploads: 0, pendingWrites: 0, orphanObjects: 0 });
    });
  });
});
