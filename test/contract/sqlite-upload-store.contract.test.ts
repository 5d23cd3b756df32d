/**
 * The upload store contract on SQLite (better-sqlite3), on a fresh database file per test, and
 * what only SQLite has: migrations on one file from several connections and processes, several
 * stores (connections) on one file, a host-owned Database, re-opening a file.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStorageConfigError, isStorageError, isStorageKeyTakenError, type ClaimedDelivery, type UploadFile } from '../../src/index.js';
import { isWebhookDestinationError } from '../../src/outbox/index.js';
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
  // Endpoints here are on 127.0.0.1: the destination guard is off unless a test turns it on.
  const store = (options: Partial<ConstructorParameters<typeof SqliteUploadStore>[0]> = {}) => {
    const s = new SqliteUploadStore({ database: file, allowPrivateNetworks: true, ...options });
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
    expect(migrate(a)).toEqual({ applied: 4 });
    expect(migrate(a)).toEqual({ applied: 0 });
    expect(migrate(b)).toEqual({ applied: 0 });
    expect(a.prepare('SELECT version FROM doorito_migration ORDER BY version').all()).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }]);
    const tables = a.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).pluck().all();
    expect(tables).toEqual(['doorito_migration', 'outbox_event', 'upload_batch', 'upload_file', 'webhook_delivery', 'webhook_endpoint']);
  });

  const versions = (db: Database.Database) => db.prepare('SELECT version FROM doorito_migration ORDER BY version').pluck().all();
  /**
   * A connection to a file as version 2 left it: migration 3 undone. Migration 4 (the
   * direct_upload column) stays: the store writes the tests' files with it, and 3 does not touch it.
   */
  const atVersion2 = () => {
    const db = connection();
    migrate(db);
    db.exec(`
      DROP TABLE webhook_delivery;
      ${['previous_secret', 'previous_secret_expires_at', 'disabled_at', 'disabled_reason', 'failing_since', 'last_success_at']
        .map((column) => `ALTER TABLE webhook_endpoint DROP COLUMN ${column};`)
        .join('\n')}
      CREATE INDEX outbox_event_pending_idx ON outbox_event (next_attempt_at) WHERE status = 'pending';
      DELETE FROM doorito_migration WHERE version = 3;
    `);
    return db;
  };

  describe('migration 2: one live file per storage key', () => {
    const hour = (h: number) => new Date(Date.UTC(2026, 10, 27, h));
    /** A file as version 1 left it: migration 2 only adds the index (after fixing the data). */
    const atVersion1 = () => {
      const db = atVersion2();
      db.exec(`DROP INDEX upload_file_live_storage_key_idx; DELETE FROM doorito_migration WHERE version = 2`);
      return { db, store: store({ database: db, migrate: false }) };
    };

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

      expect(migrate(db)).toEqual({ applied: 2 });
      expect(versions(db)).toEqual([1, 2, 3, 4]);
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
      expect(versions(db)).toEqual([1, 4]);
      expect(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'upload_file_live_storage_key_idx'`).all()).toEqual([]);
      expect(await s.repository.getFile(loser.id)).toEqual(loser);
      // A store opened on the file meanwhile refuses to start, with the same error.
      expect(() => new SqliteUploadStore({ database: file })).toThrow(/mark the others failed/u);

      for (const [, second] of pairs) await s.repository.updateFile(second!.id, { status: 'failed', errorCode: 'duplicate_key' });
      expect(migrate(db)).toEqual({ applied: 2 });
      expect(await s.repository.getFile(loser.id)).toMatchObject({ status: 'failed', errorCode: 'interrupted' });
      expect(await s.repository.getFile(pairs[0]![0]!.id)).toEqual(pairs[0]![0]);
    });
  });

  describe('migration 3: a delivery per event and endpoint', () => {
    const t = (minute: number) => Date.UTC(2026, 10, 27, 10, minute);
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/u;

    it('moves each pending event on to its active subscribers where it stood, keeps each failed one as dead letters, and delivers the rest', async () => {
      const db = atVersion2();
      // Rows as version 2 wrote them: events claimed as a whole, endpoints without health or rotation.
      const addEndpoint = db.prepare('INSERT INTO webhook_endpoint (id, url, secret, event_types, is_active, created_at) VALUES (?, ?, ?, ?, ?, ?)');
      const ep = { all: randomUUID(), stored: randomUUID(), inactive: randomUUID(), notices: randomUUID() };
      addEndpoint.run(ep.all, 'http://127.0.0.1:9/all', 'a raw secret from 0.2', '[]', 1, t(0));
      addEndpoint.run(ep.stored, 'http://127.0.0.1:9/stored', `whsec_${Buffer.alloc(32, 1).toString('base64')}`, '["file.stored"]', 1, t(1));
      addEndpoint.run(ep.inactive, 'http://127.0.0.1:9/inactive', 'inactive secret', '[]', 0, t(2));
      addEndpoint.run(ep.notices, 'http://127.0.0.1:9/notices', 'notices secret', '["webhook.delivery_exhausted"]', 1, t(3));
      const addEvent = db.prepare(
        `INSERT INTO outbox_event (id, aggregate_type, aggregate_id, event_type, payload, status, idempotency_key, attempts, max_attempts,
           next_attempt_at, delivered_at, error_message, created_at, updated_at)
         VALUES (@id, 'UploadFile', @id, @type, '{"n":1}', @status, @id, @attempts, 5, @next, @deliveredAt, @error, @created, @updated)`,
      );
      const ev = { retrying: randomUUID(), expiring: randomUUID(), unheard: randomUUID(), failed: randomUUID(), delivered: randomUUID() };
      const row = { deliveredAt: null, error: null };
      addEvent.run({ ...row, id: ev.retrying, type: 'file.stored', status: 'pending', attempts: 2, next: t(30), error: 'HTTP 500', created: t(10), updated: t(20) });
      addEvent.run({ ...row, id: ev.expiring, type: 'file.expiring', status: 'pending', attempts: 0, next: t(11), created: t(11), updated: t(11) });
      addEvent.run({ ...row, id: ev.unheard, type: 'webhook.endpoint_disabled', status: 'pending', attempts: 0, next: t(12), created: t(12), updated: t(12) });
      addEvent.run({ ...row, id: ev.failed, type: 'file.stored', status: 'failed', attempts: 5, next: t(13), error: 'HTTP 410', created: t(13), updated: t(25) });
      addEvent.run({ ...row, id: ev.delivered, type: 'file.stored', status: 'delivered', attempts: 1, next: t(14), deliveredAt: t(15), created: t(14), updated: t(15) });
      const before = Date.now();

      expect(migrate(db)).toEqual({ applied: 1 });
      expect(versions(db)).toEqual([1, 2, 3, 4]);
      expect(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'outbox_event_pending_idx'`).all()).toEqual([]);
      const s = store({ database: db, migrate: false });
      const deliveriesOf = async (eventId: string) => (await s.listDeliveries({ eventId })).sort((a, b) => a.endpointId.localeCompare(b.endpointId));
      const endpointsOf = async (eventId: string) => (await deliveriesOf(eventId)).map((d) => d.endpointId);
      const sorted = (...ids: string[]) => [...ids].sort();

      // Pending: on to the active subscribers, with the event's attempts, schedule and error.
      expect(await endpointsOf(ev.retrying)).toEqual(sorted(ep.all, ep.stored));
      for (const d of await deliveriesOf(ev.retrying)) {
        expect(d.id).toMatch(UUID);
        expect(d).toMatchObject({ eventType: 'file.stored', status: 'pending', attempts: 2, nextAttemptAt: new Date(t(30)), lastError: 'HTTP 500', attemptLog: [] });
        expect(d).toMatchObject({ createdAt: new Date(t(10)), updatedAt: new Date(t(20)) });
      }
      expect(await endpointsOf(ev.expiring)).toEqual([ep.all]);
      expect(await s.getEvent(ev.retrying)).toMatchObject({ status: 'pending' });
      // No active subscriber (a notice nobody lists): delivered by the migration.
      expect(await s.listDeliveries({ eventId: ev.unheard })).toEqual([]);
      const unheard = await s.getEvent(ev.unheard);
      expect(unheard).toMatchObject({ status: 'delivered' });
      expect(unheard?.deliveredAt?.getTime()).toBeGreaterThanOrEqual(before - 1);
      // Failed: a dead letter for every subscriber, active or not, to redeliver.
      expect(await endpointsOf(ev.failed)).toEqual(sorted(ep.all, ep.stored, ep.inactive));
      for (const d of await deliveriesOf(ev.failed)) expect(d).toMatchObject({ status: 'failed', attempts: 5, lastError: 'HTTP 410' });
      expect(await s.getEvent(ev.failed)).toMatchObject({ status: 'failed', errorMessage: 'HTTP 410' });
      // Delivered: nothing to do.
      expect(await s.listDeliveries({ eventId: ev.delivered })).toEqual([]);
      expect(await s.getEvent(ev.delivered)).toMatchObject({ status: 'delivered', deliveredAt: new Date(t(15)) });

      // The endpoints read as before, with none of the new fields set.
      const endpoints = await s.listWebhookEndpoints();
      expect(endpoints.map((e) => [e.id, e.secret, e.isActive])).toEqual([
        [ep.all, 'a raw secret from 0.2', true],
        [ep.stored, `whsec_${Buffer.alloc(32, 1).toString('base64')}`, true],
        [ep.inactive, 'inactive secret', false],
        [ep.notices, 'notices secret', true],
      ]);
      for (const e of endpoints) {
        for (const field of ['previousSecret', 'previousSecretExpiresAt', 'disabledAt', 'disabledReason', 'failingSince', 'lastSuccessAt'] as const) expect(e[field]).toBeUndefined();
      }

      // And the relay goes on from there: earliest due first, the event's deliveries in endpoint order.
      const claimed = await s.claimDeliveries({ now: new Date(), limit: 10, leaseUntil: later(60_000) });
      expect(claimed.map((c) => [c.event.id, c.endpoint.id, c.delivery.attempts])).toEqual([
        [ev.expiring, ep.all, 1],
        [ev.retrying, ep.all, 3],
        [ev.retrying, ep.stored, 3],
      ]);
      const [deadLetter] = await s.listDeliveries({ eventId: ev.failed, endpointId: ep.all });
      expect(await s.redeliver(deadLetter!.id)).toMatchObject({ status: 'pending', attempts: 0 });
      expect(await s.getEvent(ev.failed)).toMatchObject({ status: 'pending' });
    });

    it('migrates an outbox with no endpoints: every pending event delivered, failed ones kept failed', async () => {
      const db = atVersion2();
      const id = randomUUID();
      db.prepare(
        `INSERT INTO outbox_event (id, aggregate_type, aggregate_id, event_type, payload, status, idempotency_key, created_at, updated_at)
         VALUES (?, 'UploadFile', ?, 'file.stored', '{}', 'pending', ?, ?, ?)`,
      ).run(id, id, id, t(0), t(0));
      expect(migrate(db)).toEqual({ applied: 1 });
      const s = store({ database: db, migrate: false });
      expect(await s.getEvent(id)).toMatchObject({ status: 'delivered' });
      expect(await s.listDeliveries()).toEqual([]);
    });
  });

  describe('migration 4: the direct_upload column', () => {
    it('adds the column to a file with records, which read back unchanged, and takes only JSON in it', async () => {
      const db = connection();
      migrate(db);
      const s = store({ database: db, migrate: false });
      const old = [fileOf({ status: 'stored', sha256: 'ab', sizeBytes: 3 }), fileOf({ metadata: { a: '1' } })];
      for (const f of old) await s.repository.createFile(f);
      db.exec('ALTER TABLE upload_file DROP COLUMN direct_upload; DELETE FROM doorito_migration WHERE version = 4');
      // Rows of a file as version 3 left it read back as they were: no direct upload.
      for (const f of old) expect(await s.repository.getFile(f.id)).toStrictEqual(f);

      expect(migrate(db)).toEqual({ applied: 1 });
      expect(versions(db)).toEqual([1, 2, 3, 4]);
      for (const f of old) expect(await s.repository.getFile(f.id)).toStrictEqual(f);
      const direct = fileOf({ directUpload: { method: 'put', size: 3, expiresAt: new Date(Date.UTC(2026, 10, 27, 11)) } });
      await s.repository.createFile(direct);
      expect(await s.repository.getFile(direct.id)).toStrictEqual(direct);
      expect(() => db.prepare(`UPDATE upload_file SET direct_upload = 'not json' WHERE id = ?`).run(direct.id)).toThrow(/CHECK constraint failed/u);
      expect(await s.repository.getFile(direct.id)).toStrictEqual(direct);
    });
  });

  it('keeps endpoint secrets sealed at rest with a secretsKey, opened on every read; without the key they do not open', async () => {
    const key = randomBytes(32).toString('base64');
    const s = store({ secretsKey: key });
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const a = await s.createWebhookEndpoint({ url: 'http://127.0.0.1:9/a', secret });
    expect(a.secret).toBe(secret);
    const raw = connection();
    const stored = () => raw.prepare('SELECT secret, previous_secret FROM webhook_endpoint WHERE id = ?').get(a.id) as { secret: string; previous_secret: string | null };
    expect(stored().secret).toMatch(/^enc:v1:/u);
    expect(stored().secret).not.toContain(secret.slice('whsec_'.length));
    expect((await s.listWebhookEndpoints()).map((e) => e.secret)).toEqual([secret]);
    expect(await s.getWebhookEndpoint(a.id)).toMatchObject({ secret });

    // Rotated: both sealed in the row, both opened for the relay.
    const rotated = await s.rotateWebhookSecret(a.id, { overlapHours: 1 });
    expect(rotated).toMatchObject({ previousSecret: secret });
    expect(stored().previous_secret).toMatch(/^enc:v1:/u);
    expect(stored().secret).toMatch(/^enc:v1:/u);
    expect(stored().secret).not.toContain(rotated!.secret.slice('whsec_'.length));
    await s.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} });
    const [claimed] = await s.claimDeliveries({ now: later(1_000), limit: 10, leaseUntil: later(60_000) });
    expect(claimed?.endpoint).toMatchObject({ secret: rotated!.secret, previousSecret: secret });

    // A secret stored before the key was configured is read as it is.
    const plain = await store().createWebhookEndpoint({ url: 'http://127.0.0.1:9/plain', secret: 'stored before the key' });
    expect(await s.getWebhookEndpoint(plain.id)).toMatchObject({ secret: 'stored before the key' });

    // Without the key, or with another one: a StorageConfigError naming the option, never the secret.
    for (const other of [store(), store({ secretsKey: randomBytes(32) })]) {
      const error = await other.listWebhookEndpoints().catch((e: unknown) => e);
      expect(isStorageConfigError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'E_CONFIG', option: 'secretsKey' });
      expect((error as Error).message).not.toContain(secret.slice('whsec_'.length));
      expect(isStorageConfigError(await other.claimDeliveries({ now: later(120_000), limit: 10, leaseUntil: later(180_000) }).catch((e: unknown) => e))).toBe(true);
    }
    // A key that is not 32 bytes is refused before the file is opened.
    let refused: unknown;
    try {
      new SqliteUploadStore({ database: path.join(dir, 'never-created.db'), secretsKey: 'too short' });
    } catch (error) {
      refused = error;
    }
    expect(refused).toMatchObject({ code: 'E_CONFIG', option: 'secretsKey' });
    await expect(stat(path.join(dir, 'never-created.db'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses to register a non-public endpoint unless allowPrivateNetworks, storing nothing', async () => {
    const guarded = store({ allowPrivateNetworks: false });
    for (const url of ['http://127.0.0.1:9/hook', 'http://localhost:9/hook', 'http://[::1]/hook', 'http://10.0.0.7/hook']) {
      const error = await guarded.createWebhookEndpoint({ url }).catch((e: unknown) => e);
      expect(isWebhookDestinationError(error), url).toBe(true);
      expect(error).toMatchObject({ code: 'E_WEBHOOK_DESTINATION' });
    }
    expect(await guarded.listWebhookEndpoints()).toEqual([]);
    expect(await store().createWebhookEndpoint({ url: 'http://127.0.0.1:9/hook' })).toMatchObject({ url: 'http://127.0.0.1:9/hook' });
  });

  it('hands out a claimed delivery, its event and its endpoint exactly as they are stored', async () => {
    const s = store();
    const a = await s.createWebhookEndpoint({ url: 'http://127.0.0.1:9/a', eventTypes: ['file.stored'] });
    const payload = { name: 'rapport été 📄.pdf', quote: 'say "hi"\n\\', nested: { list: [1, 2.5, null, true], empty: {} }, big: 2 ** 52 };
    const { event } = await s.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload });
    const now = later(1_000);
    const [first] = await s.claimDeliveries({ now, limit: 10, leaseUntil: later(60_000, now) });
    expect(first?.delivery).toEqual(await s.getDelivery(first!.delivery.id));
    // Again after a retry, with every field of the delivery set (but deliveredAt).
    const retryAt = later(5_000, now);
    const outcome = { status: 'pending', nextAttemptAt: retryAt, errorMessage: 'HTTP 503' } as const;
    await s.completeDeliveries([{ claimed: first!.delivery, outcome, attempt: { at: now, status: 503, error: 'HTTP 503', durationMs: 7 } }], now);
    const [claimed] = await s.claimDeliveries({ now: retryAt, limit: 10, leaseUntil: later(60_000, retryAt) });
    expect(claimed?.delivery).toMatchObject({ attempts: 2, lastStatus: 503, lastError: 'HTTP 503', lastDurationMs: 7, attemptLog: [{ status: 503 }] });
    expect(claimed?.delivery).toEqual(await s.getDelivery(claimed!.delivery.id));
    expect(claimed?.event).toEqual(event);
    expect(claimed?.event.payload).toEqual(payload);
    expect(claimed?.endpoint).toEqual(await s.getWebhookEndpoint(a.id));
  });

  it('claims and records a round through indexes only: no statement scans the deliveries or the events', async () => {
    const db = connection();
    const s = store({ database: db });
    const gone = await s.createWebhookEndpoint({ url: 'http://127.0.0.1:9/gone' });
    await s.createWebhookEndpoint({ url: 'http://127.0.0.1:9/other' });
    for (let i = 0; i < 30; i += 1) await s.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } });
    // The SQL of every statement the store prepares from here on (it prepares each once).
    const prepared: string[] = [];
    const prepare = db.prepare.bind(db);
    db.prepare = ((sql: string) => {
      prepared.push(sql);
      return prepare(sql);
    }) as typeof db.prepare;
    const now = later(1_000);
    const claimed = await s.claimDeliveries({ now, limit: 20, leaseUntil: later(60_000, now) });
    await s.completeDeliveries(
      claimed.map((c, i) => ({
        claimed: c.delivery,
        outcome: i % 3 === 0 ? { status: 'delivered' } : i % 3 === 1 ? { status: 'pending', nextAttemptAt: later(5_000, now), errorMessage: 'HTTP 500' } : { status: 'failed', errorMessage: 'HTTP 500' },
        attempt: { at: now, status: i % 3 === 0 ? 200 : 500, durationMs: 3 },
        health: i % 3 === 0 ? 'success' : 'failure',
        ...(c.endpoint.id === gone.id && i % 3 === 2 ? { disableEndpoint: { reason: 'HTTP 410 Gone' } } : {}),
      })),
      now,
    );
    db.prepare = prepare;
    expect(prepared.length).toBeGreaterThanOrEqual(6);
    for (const sql of prepared) {
      // Every parameter NULL: the plan does not depend on the values (there are no ANALYZE statistics).
      const names = [...new Set(sql.match(/@\w+/gu) ?? [])].map((name) => [name.slice(1), null]);
      const explain = db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
      const rows = names.length > 0 ? explain.all(Object.fromEntries(names)) : explain.all(...(sql.match(/\?/gu) ?? []).map(() => null));
      const plan = (rows as Array<{ detail: string }>).map((row) => row.detail);
      // json_each lists and the statements' own subqueries (due, s) are scanned, tables searched.
      const scans = plan.filter((line) => line.startsWith('SCAN ') && !/VIRTUAL TABLE|^SCAN (due|s)$/u.test(line));
      expect(scans, `${sql}\n${plan.join('\n')}`).toEqual([]);
      expect(plan.some((line) => line.startsWith('SEARCH ')), sql).toBe(true);
    }
  });

  it('lets exactly one of two processes migrating a fresh file at once apply the migration', async () => {
    const startAt = Date.now() + 1_500;
    // The store switches the fresh file to WAL (both processes at once), then each migrates.
    const body = `const db = new Database(file); new SqliteUploadStore({ database: db, migrate: false }); console.log(JSON.stringify(migrate(db))); db.close();`;
    const results = (await Promise.all([inProcess(file, startAt, body), inProcess(file, startAt, body)])) as Array<{ applied: number }>;
    expect(results.map((r) => r.applied).sort()).toEqual([0, 4]);
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

  it('never hands one delivery to two stores (connections) on the same file claiming at once', async () => {
    const stores = [store(), store(), store()];
    await stores[0]!.createWebhookEndpoint({ url: 'http://127.0.0.1:9/a' });
    await stores[1]!.createWebhookEndpoint({ url: 'http://127.0.0.1:9/b' });
    for (let i = 0; i < 30; i += 1) {
      await stores[i % 3]!.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } });
    }
    const ids = new Set((await stores[2]!.listDeliveries({ limit: 1000 })).map((d) => d.id));
    expect(ids.size).toBe(60);
    const now = later(1_000);
    const claimed: ClaimedDelivery[] = [];
    for (let round = 0; round < 3; round += 1) {
      const claims = await Promise.all(stores.map((s) => s.claimDeliveries({ now, limit: 10, leaseUntil: later(60_000, now) })));
      claimed.push(...claims.flat());
    }
    const claimedIds = claimed.map((c) => c.delivery.id);
    expect(new Set(claimedIds).size).toBe(claimedIds.length);
    expect(new Set(claimedIds)).toEqual(ids);
    expect(claimed.every((c) => c.delivery.attempts === 1)).toBe(true);
  });

  it('never hands one delivery to two processes claiming from the same file at once', async () => {
    const s = store();
    await s.createWebhookEndpoint({ url: 'http://127.0.0.1:9/a' });
    for (let i = 0; i < 90; i += 1) {
      await s.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } });
    }
    const ids = (await s.listDeliveries({ limit: 1000 })).map((d) => d.id);
    expect(ids).toHaveLength(90);
    const startAt = Date.now() + 1_500;
    const body = `
      const store = new SqliteUploadStore({ database: file });
      const now = new Date(Date.now() + 1000);
      const ids = [];
      for (;;) {
        const batch = await store.claimDeliveries({ now, limit: 3, leaseUntil: new Date(now.getTime() + 60000) });
        if (batch.length === 0) break;
        ids.push(...batch.map((c) => c.delivery.id));
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
