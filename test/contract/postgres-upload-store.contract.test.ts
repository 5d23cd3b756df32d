/**
 * The upload store contract on the real Postgres (PG_TEST_URL, default
 * postgres://postgres@127.0.0.1:5432/test), in a schema of its own, dropped afterwards.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStorageConfigError, isStorageError, isStorageKeyTakenError, type UploadFile } from '../../src/index.js';
import { generateWebhookSecret } from '../../src/outbox/index.js';
import { OUTBOX_CHANNEL, PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import { PG_TEST_URL, testPool, truncateStore } from '../helpers/postgres.js';
import { outboxRelayContract } from './outbox-relay-contract.js';
import { fileOf, uploadStoreContract } from './upload-store-contract.js';

const url = PG_TEST_URL;
const { pool, available } = await testPool();
const schema = `doorito_test_${randomBytes(4).toString('hex')}`;

describe.runIf(available)('PostgresUploadStore [postgres]', () => {
  beforeAll(async () => {
    await migrate(pool, { schema });
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('migrates idempotently, also when several processes run it at once', async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate(pool, { schema })));
    expect(results.map((r) => r.applied)).toEqual([0, 0, 0, 0]);
    const fresh = `${schema}_m`;
    try {
      const parallel = await Promise.all(Array.from({ length: 4 }, () => migrate(pool, { schema: fresh })));
      expect(parallel.map((r) => r.applied).sort()).toEqual([0, 0, 0, 5]);
      const { rows } = await pool.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`, [fresh]);
      expect(rows.map((r) => r['table_name'])).toEqual(['doorito_migration', 'outbox_event', 'upload_batch', 'upload_file', 'webhook_delivery', 'webhook_endpoint']);
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
    }
  });

  /**
   * A fresh schema as version `version` left it: the later migrations undone. Migration 4 adds
   * webhook_delivery, the endpoint columns and the relay's functions, and drops the event-claim
   * index; migration 3 only
   * adds the live storage-key index (after fixing the data). Migration 5 (the direct_upload
   * column) stays: the store writes the tests' files with it, and 3 and 4 do not touch it.
   */
  const schemaAtVersion = async (name: string, version: 2 | 3) => {
    const q = `"${name}"`;
    await pool.query(`DROP SCHEMA IF EXISTS ${q} CASCADE`);
    await migrate(pool, { schema: name });
    await pool.query(`
      DROP FUNCTION ${q}.doorito_claim_deliveries, ${q}.doorito_complete_deliveries;
      DROP TABLE ${q}.webhook_delivery;
      ALTER TABLE ${q}.webhook_endpoint DROP COLUMN previous_secret, DROP COLUMN previous_secret_expires_at, DROP COLUMN disabled_at,
        DROP COLUMN disabled_reason, DROP COLUMN failing_since, DROP COLUMN last_success_at;
      CREATE INDEX outbox_event_pending_idx ON ${q}.outbox_event (next_attempt_at) WHERE status = 'pending';
      DELETE FROM ${q}.doorito_migration WHERE version = 4;
    `);
    if (version === 2) {
      await pool.query(`DROP INDEX ${q}.upload_file_live_storage_key_idx; DELETE FROM ${q}.doorito_migration WHERE version = 3`);
    }
  };

  describe('migration 3: one live file per storage key', () => {
    const old = `${schema}_v2`;
    const hour = (h: number) => new Date(Date.UTC(2026, 10, 27, h));
    const atVersion2 = async () => {
      await schemaAtVersion(old, 2);
      return new PostgresUploadStore({ pool, schema: old });
    };
    const versions = async () => (await pool.query(`SELECT version FROM "${old}".doorito_migration ORDER BY version`)).rows.map((r) => r['version']);
    afterAll(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${old}" CASCADE`);
    });

    it('fails the uploading records that lost their key, leaving the stored holder and every other file as they were', async () => {
      const store = await atVersion2();
      const shared = 'uploads/2026/11/report.txt';
      const racing = 'uploads/2026/11/notes.txt';
      const stored = fileOf({ storageKey: shared, status: 'stored', sha256: 'ab', createdAt: hour(1), updatedAt: hour(1) });
      const before = fileOf({ storageKey: shared, createdAt: hour(0), updatedAt: hour(0) });
      const after = fileOf({ storageKey: shared, createdAt: hour(2), updatedAt: hour(2) });
      const olderRacer = fileOf({ storageKey: racing, createdAt: hour(0) });
      const newerRacer = fileOf({ storageKey: racing, createdAt: hour(1) });
      const failed = fileOf({ storageKey: shared, status: 'failed', errorCode: 'aborted' });
      const alone = fileOf();
      const files = [stored, before, after, olderRacer, newerRacer, failed, alone];
      for (const f of files) await store.repository.createFile(f);

      expect(await migrate(pool, { schema: old })).toEqual({ applied: 2 });
      expect(await versions()).toEqual([1, 2, 3, 4, 5]);
      for (const f of [stored, newerRacer, failed, alone]) expect(await store.repository.getFile(f.id)).toEqual(f);
      for (const f of [before, after, olderRacer]) {
        const got = await store.repository.getFile(f.id);
        expect(got).toMatchObject({ ...f, status: 'failed', errorCode: 'interrupted', updatedAt: expect.any(Date) });
        expect(got?.errorMessage).toMatch(/another live upload holds the same storage key/u);
      }
      // The index holds from now on.
      const late = fileOf({ storageKey: shared });
      expect(isStorageKeyTakenError(await store.repository.createFile(late).catch((e: unknown) => e))).toBe(true);
      expect(await store.repository.findLiveStorageKeys([shared, racing])).toEqual(new Set([shared, racing]));
    });

    it('refuses to migrate when stored files share keys, naming the schema and the keys, and changes nothing', async () => {
      const store = await atVersion2();
      const keys = Array.from({ length: 12 }, (_, i) => `uploads/2026/11/dup-${String(i).padStart(2, '0')}.txt`);
      const pairs: UploadFile[][] = keys.map((k) => [fileOf({ storageKey: k, status: 'stored' }), fileOf({ storageKey: k, status: 'processed' })]);
      const loser = fileOf({ storageKey: keys[0]!, createdAt: hour(5) });
      for (const f of [...pairs.flat(), loser]) await store.repository.createFile(f);

      const error = await migrate(pool, { schema: old }).catch((e: unknown) => e);
      expect(isStorageError(error)).toBe(true);
      const message = (error as Error).message;
      expect(message).toContain(`Postgres schema "${old}"`);
      for (const k of keys.slice(0, 10)) expect(message).toContain(`"${k}"`);
      expect(message).not.toContain(`"${keys[10]!}"`);
      expect(message).toContain('and 2 more');
      expect(message).toMatch(/keep the one file .* mark the others failed/u);
      expect(await versions()).toEqual([1, 2, 5]);
      const { rows } = await pool.query(`SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND indexname = 'upload_file_live_storage_key_idx'`, [old]);
      expect(rows).toEqual([]);
      // Rolled back as a whole: not even the uploading record that lost its key was touched.
      expect(await store.repository.getFile(loser.id)).toEqual(loser);

      // Doing what the message says lets the migration through.
      for (const [, second] of pairs) await store.repository.updateFile(second!.id, { status: 'failed', errorCode: 'duplicate_key' });
      expect(await migrate(pool, { schema: old })).toEqual({ applied: 2 });
      expect(await store.repository.getFile(loser.id)).toMatchObject({ status: 'failed', errorCode: 'interrupted' });
      expect(await store.repository.getFile(pairs[0]![0]!.id)).toEqual(pairs[0]![0]);
    });
  });

  describe('migration 4: deliveries per endpoint', () => {
    const old = `${schema}_v3`;
    afterAll(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${old}" CASCADE`);
    });

    it('carries the events in flight over: a pending delivery per active endpoint, a dead letter per endpoint of a failed event', async () => {
      await schemaAtVersion(old, 3);
      const q = `"${old}"`;
      const at = (minutes: number) => new Date(Date.UTC(2026, 10, 27, 12, minutes, 0, 123));
      const endpoint = async (name: string, eventTypes: string[], isActive = true) => {
        const id = randomUUID();
        await pool.query(`INSERT INTO ${q}.webhook_endpoint (id, url, secret, event_types, is_active, created_at) VALUES ($1, $2, 'raw secret', $3, $4, $5)`, [
          id,
          `http://127.0.0.1:9/${name}`,
          eventTypes,
          isActive,
          at(0),
        ]);
        return id;
      };
      const all = await endpoint('all', []);
      const stored = await endpoint('stored', ['file.stored']);
      const inactive = await endpoint('inactive', [], false);
      const notices = await endpoint('notices', ['webhook.delivery_exhausted']);
      const event = async (eventType: string, status: string, fields: { attempts?: number; next?: Date; error?: string; deliveredAt?: Date } = {}) => {
        const id = randomUUID();
        await pool.query(
          `INSERT INTO ${q}.outbox_event (id, aggregate_type, aggregate_id, event_type, payload, status, idempotency_key, attempts, next_attempt_at,
             delivered_at, error_message, created_at, updated_at)
           VALUES ($1, 'UploadFile', $9, $2, '{"n": 1}', $3, $9, $4, $5, $6, $7, $8, $8)`,
          [id, eventType, status, fields.attempts ?? 0, fields.next ?? at(1), fields.deliveredAt ?? null, fields.error ?? null, at(1), id],
        );
        return id;
      };
      const retrying = await event('file.stored', 'pending', { attempts: 2, next: at(30), error: 'HTTP 500' });
      const fresh = await event('file.expiring', 'pending');
      const nowhere = await event('webhook.endpoint_disabled', 'pending');
      const dead = await event('file.stored', 'failed', { attempts: 5, next: at(20), error: 'https://a.example/hook: HTTP 410' });
      const notice = await event('webhook.delivery_exhausted', 'pending');
      const done = await event('file.stored', 'delivered', { attempts: 1, deliveredAt: at(2) });

      expect(await migrate(pool, { schema: old })).toEqual({ applied: 1 });
      const store = new PostgresUploadStore({ pool, schema: old });
      const deliveries = async (eventId: string) =>
        (await store.listDeliveries({ eventId })).sort((a, b) => (a.endpointId < b.endpointId ? -1 : 1)).map((d) => ({
          endpointId: d.endpointId,
          status: d.status,
          attempts: d.attempts,
          nextAttemptAt: d.nextAttemptAt,
          lastError: d.lastError,
          createdAt: d.createdAt,
          attemptLog: d.attemptLog,
          eventType: d.eventType,
        }));
      const sorted = <T extends { endpointId: string }>(list: T[]) => list.sort((a, b) => (a.endpointId < b.endpointId ? -1 : 1));
      expect(await deliveries(retrying)).toEqual(
        sorted([all, stored].map((endpointId) => ({ endpointId, status: 'pending', attempts: 2, nextAttemptAt: at(30), lastError: 'HTTP 500', createdAt: at(1), attemptLog: [], eventType: 'file.stored' }))),
      );
      expect(await deliveries(fresh)).toEqual([
        { endpointId: all, status: 'pending', attempts: 0, nextAttemptAt: at(1), lastError: undefined, createdAt: at(1), attemptLog: [], eventType: 'file.expiring' },
      ]);
      // A dead letter for every endpoint it went to, active or not, to redeliver.
      expect(await deliveries(dead)).toEqual(
        sorted(
          [all, stored, inactive].map((endpointId) => ({
            endpointId,
            status: 'failed',
            attempts: 5,
            nextAttemptAt: at(20),
            lastError: 'https://a.example/hook: HTTP 410',
            createdAt: at(1),
            attemptLog: [],
            eventType: 'file.stored',
          })),
        ),
      );
      expect((await deliveries(notice)).map((d) => d.endpointId)).toEqual([notices]);
      expect(await deliveries(nowhere)).toEqual([]);
      expect(await deliveries(done)).toEqual([]);
      // Event statuses: a pending event that goes nowhere is delivered; the others are as they were.
      expect(await store.getEvent(nowhere)).toMatchObject({ status: 'delivered', deliveredAt: expect.any(Date) });
      expect(await store.getEvent(retrying)).toMatchObject({ status: 'pending' });
      expect(await store.getEvent(dead)).toMatchObject({ status: 'failed', errorMessage: 'https://a.example/hook: HTTP 410' });
      expect(await store.getEvent(done)).toMatchObject({ status: 'delivered', deliveredAt: at(2) });
      expect((await store.getWebhookEndpoint(all))?.failingSince).toBeUndefined();

      // The relay claims them through the new index; the old claim index is gone.
      const { rows: indexes } = await pool.query(`SELECT indexname FROM pg_indexes WHERE schemaname = $1`, [old]);
      expect(indexes.map((r) => r['indexname'])).toContain('webhook_delivery_due_idx');
      expect(indexes.map((r) => r['indexname'])).not.toContain('outbox_event_pending_idx');
      const claimed = await store.claimDeliveries({ now: at(40), limit: 10, leaseUntil: at(50) });
      expect(claimed.map((c) => [c.event.id, c.delivery.attempts]).sort()).toEqual(
        [
          [fresh, 1],
          [notice, 1],
          [retrying, 3],
          [retrying, 3],
        ].sort(),
      );
      // A dead letter comes back on request.
      const [letter] = await store.listDeliveries({ eventId: dead, endpointId: all });
      expect(await store.redeliver(letter!.id, at(41))).toMatchObject({ status: 'pending', attempts: 0, nextAttemptAt: at(41) });
      expect(await store.getEvent(dead)).toMatchObject({ status: 'pending' });
    });
  });

  describe('migration 5: the direct_upload column', () => {
    const old = `${schema}_v4`;
    afterAll(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${old}" CASCADE`);
    });

    it('adds the column to a schema with records, which read back unchanged', async () => {
      const q = `"${old}"`;
      await pool.query(`DROP SCHEMA IF EXISTS ${q} CASCADE`);
      await migrate(pool, { schema: old });
      const store = new PostgresUploadStore({ pool, schema: old });
      const files = [fileOf({ status: 'stored', sha256: 'ab', sizeBytes: 3 }), fileOf({ metadata: { a: '1' } })];
      for (const f of files) await store.repository.createFile(f);
      await pool.query(`ALTER TABLE ${q}.upload_file DROP COLUMN direct_upload; DELETE FROM ${q}.doorito_migration WHERE version = 5`);
      // Rows of a schema as version 4 left it read back as they were: no direct upload.
      for (const f of files) expect(await store.repository.getFile(f.id)).toStrictEqual(f);

      expect(await migrate(pool, { schema: old })).toEqual({ applied: 1 });
      const { rows } = await pool.query(`SELECT version FROM ${q}.doorito_migration ORDER BY version`);
      expect(rows.map((r) => r['version'])).toEqual([1, 2, 3, 4, 5]);
      for (const f of files) expect(await store.repository.getFile(f.id)).toStrictEqual(f);
      const direct = fileOf({ directUpload: { method: 'put', size: 3, expiresAt: new Date(Date.UTC(2026, 10, 27, 11, 0, 0, 123)) } });
      await store.repository.createFile(direct);
      expect(await store.repository.getFile(direct.id)).toStrictEqual(direct);
      // As the column holds it: jsonb, the instant as ISO 8601.
      const column = await pool.query(`SELECT direct_upload FROM ${q}.upload_file WHERE id = $1`, [direct.id]);
      expect(column.rows[0]?.['direct_upload']).toEqual({ method: 'put', size: 3, expiresAt: '2026-11-27T11:00:00.123Z' });
    });
  });

  it('seals endpoint secrets with a secretsKey: the column holds enc:v1:…, the store hands them out opened, a store without the key refuses', async () => {
    const key = randomBytes(32).toString('base64');
    const sealed = new PostgresUploadStore({ pool, schema, secretsKey: key, allowPrivateNetworks: true });
    try {
      const secret = generateWebhookSecret();
      const endpoint = await sealed.createWebhookEndpoint({ url: 'http://127.0.0.1:9/sealed', secret });
      expect(endpoint.secret).toBe(secret);
      const column = async () =>
        (await pool.query(`SELECT secret, previous_secret FROM "${schema}".webhook_endpoint WHERE id = $1`, [endpoint.id])).rows[0] as {
          secret: string;
          previous_secret: string | null;
        };
      const stored = await column();
      expect(stored.secret).toMatch(/^enc:v1:/u);
      expect(stored.secret).not.toContain(secret.slice('whsec_'.length));
      expect((await sealed.listWebhookEndpoints()).map((e) => e.secret)).toEqual([secret]);
      expect(await sealed.getWebhookEndpoint(endpoint.id)).toMatchObject({ secret });
      // The relay gets it opened with the claim; a rotation keeps the old one sealed too.
      await sealed.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} });
      const [claimed] = await sealed.claimDeliveries({ now: new Date(Date.now() + 1000), limit: 10, leaseUntil: new Date(Date.now() + 60_000) });
      expect(claimed?.endpoint.secret).toBe(secret);
      const rotated = await sealed.rotateWebhookSecret(endpoint.id);
      expect(rotated).toMatchObject({ previousSecret: secret });
      const after = await column();
      expect(after.secret).toMatch(/^enc:v1:/u);
      expect(after.previous_secret).toBe(stored.secret);
      expect(await sealed.getWebhookEndpoint(endpoint.id)).toEqual(rotated);
      // Another store on the same tables: without the key, or with another one, a typed error naming the option.
      for (const other of [new PostgresUploadStore({ pool, schema }), new PostgresUploadStore({ pool, schema, secretsKey: randomBytes(32) })]) {
        const error = await other.listWebhookEndpoints().catch((e: unknown) => e);
        expect(isStorageConfigError(error)).toBe(true);
        expect(error).toMatchObject({ option: 'secretsKey' });
        expect((error as Error).message).not.toContain(secret);
      }
      expect(() => new PostgresUploadStore({ pool, schema, secretsKey: 'too short' })).toThrow(/secretsKey/u);
    } finally {
      await truncate();
    }
  });

  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => new PostgresUploadStore({ pool, schema: 'x"; DROP TABLE y; --' })).toThrow(/schema name/u);
  });

  it('listens again when its LISTEN connection is killed, and wakes the relay for events committed meanwhile', async () => {
    const store = new PostgresUploadStore({ pool, schema });
    const wakes: Array<() => void> = [];
    const nextWake = () => new Promise<void>((resolve) => wakes.push(resolve));
    const unsubscribe = await store.onEventCommitted(() => wakes.shift()?.());
    try {
      const { rows } = await pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN ${OUTBOX_CHANNEL}' AND pid <> pg_backend_pid()`,
      );
      expect(rows.length).toBeGreaterThan(0);
      const woken = nextWake();
      await pool.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [rows.map((r) => r.pid)]);
      // The re-listen itself wakes the relay: something may have been committed while deaf.
      await woken;
      const again = nextWake();
      await store.transaction((tx) => tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'relisten', eventType: 'file.stored', payload: {} }));
      await again;
    } finally {
      await unsubscribe();
      await truncate();
    }
  });

  const truncate = () => truncateStore(pool, schema);

  uploadStoreContract('PostgresUploadStore', async () => ({
    // The endpoints of the suites are on 127.0.0.1: the destination guard is off.
    store: new PostgresUploadStore({ pool, schema, allowPrivateNetworks: true }),
    cleanup: async () => {
      await truncate();
    },
  }));

  outboxRelayContract('PostgresUploadStore', async () => ({
    // Three stores, as three relay processes would have; each statement takes its own connection.
    stores: Array.from({ length: 3 }, () => new PostgresUploadStore({ pool, schema, allowPrivateNetworks: true })),
    cleanup: async () => {
      await truncate();
    },
  }));

  describe('on one pg.Client instead of a pool', () => {
    const clients: pg.Client[] = [];
    const connect = async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      clients.push(client);
      return client;
    };
    const endClients = async () => {
      for (const client of clients.splice(0)) await client.end();
    };

    it('migrates through the store, and refuses options with neither a pool nor a client', async () => {
      const fresh = `${schema}_c`;
      try {
        const store = new PostgresUploadStore({ client: await connect(), schema: fresh });
        expect(await store.migrate()).toEqual({ applied: 5 });
        expect(await store.migrate()).toEqual({ applied: 0 });
        // Statements queue behind a transaction that awaits, instead of slipping into it.
        const file = fileOf();
        const inside = store.transaction(async (tx) => {
          await tx.repository.createFile(file);
          await new Promise((resolve) => setTimeout(resolve, 100));
          throw new Error('rolled back');
        });
        const outside = store.repository.getFile(file.id);
        await expect(inside).rejects.toThrow('rolled back');
        expect(await outside).toBeUndefined();
        expect(await store.repository.getFile(file.id)).toBeUndefined();
      } finally {
        await pool.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
        await endClients();
      }
      expect(() => new PostgresUploadStore({} as never)).toThrow(/pool.*client/u);
    });

    uploadStoreContract('PostgresUploadStore (pg.Client)', async () => ({
      store: new PostgresUploadStore({ client: await connect(), schema, allowPrivateNetworks: true }),
      cleanup: async () => {
        await truncate();
        await endClients();
      },
    }));

    outboxRelayContract('PostgresUploadStore (pg.Client)', async () => ({
      // Three relays, each with a connection of its own.
      stores: await Promise.all(Array.from({ length: 3 }, async () => new PostgresUploadStore({ client: await connect(), schema, allowPrivateNetworks: true }))),
      cleanup: async () => {
        await truncate();
        await endClients();
      },
    }));
  });
});
