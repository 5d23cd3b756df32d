/**
 * The upload store contract on the real Postgres (PG_TEST_URL, default
 * postgres://postgres@127.0.0.1:5432/test), in a schema of its own, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStorageError, isStorageKeyTakenError, type UploadFile } from '../../src/index.js';
import { OUTBOX_CHANNEL, PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import { PG_TEST_URL, testPool } from '../helpers/postgres.js';
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
      expect(parallel.map((r) => r.applied).sort()).toEqual([0, 0, 0, 3]);
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1`, [fresh]);
      expect(rows[0]?.n).toBe(5);
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
    }
  });

  describe('migration 3: one live file per storage key', () => {
    const old = `${schema}_v2`;
    const hour = (h: number) => new Date(Date.UTC(2026, 10, 27, h));
    /** A schema as version 2 left it: migration 3 only adds the index (after fixing the data). */
    const atVersion2 = async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${old}" CASCADE`);
      await migrate(pool, { schema: old });
      await pool.query(`DROP INDEX "${old}".upload_file_live_storage_key_idx`);
      await pool.query(`DELETE FROM "${old}".doorito_migration WHERE version = 3`);
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

      expect(await migrate(pool, { schema: old })).toEqual({ applied: 1 });
      expect(await versions()).toEqual([1, 2, 3]);
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
      expect(await versions()).toEqual([1, 2]);
      const { rows } = await pool.query(`SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND indexname = 'upload_file_live_storage_key_idx'`, [old]);
      expect(rows).toEqual([]);
      // Rolled back as a whole: not even the uploading record that lost its key was touched.
      expect(await store.repository.getFile(loser.id)).toEqual(loser);

      // Doing what the message says lets the migration through.
      for (const [, second] of pairs) await store.repository.updateFile(second!.id, { status: 'failed', errorCode: 'duplicate_key' });
      expect(await migrate(pool, { schema: old })).toEqual({ applied: 1 });
      expect(await store.repository.getFile(loser.id)).toMatchObject({ status: 'failed', errorCode: 'interrupted' });
      expect(await store.repository.getFile(pairs[0]![0]!.id)).toEqual(pairs[0]![0]);
    });
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

  const truncate = () =>
    pool.query(`TRUNCATE "${schema}".upload_file, "${schema}".upload_batch, "${schema}".outbox_event, "${schema}".webhook_endpoint`);

  uploadStoreContract('PostgresUploadStore', async () => ({
    store: new PostgresUploadStore({ pool, schema }),
    cleanup: async () => {
      await truncate();
    },
  }));

  outboxRelayContract('PostgresUploadStore', async () => ({
    // Three stores, as three relay processes would have; each statement takes its own connection.
    stores: Array.from({ length: 3 }, () => new PostgresUploadStore({ pool, schema })),
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
        expect(await store.migrate()).toEqual({ applied: 3 });
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
      store: new PostgresUploadStore({ client: await connect(), schema }),
      cleanup: async () => {
        await truncate();
        await endClients();
      },
    }));

    outboxRelayContract('PostgresUploadStore (pg.Client)', async () => ({
      // Three relays, each with a connection of its own.
      stores: await Promise.all(Array.from({ length: 3 }, async () => new PostgresUploadStore({ client: await connect(), schema }))),
      cleanup: async () => {
        await truncate();
        await endClients();
      },
    }));
  });
});
