/**
 * The upload store contract on the real Postgres (PG_TEST_URL, default
 * postgres://postgres@127.0.0.1:5432/test), in a schema of its own, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTBOX_CHANNEL, PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import { outboxRelayContract } from './outbox-relay-contract.js';
import { fileOf, uploadStoreContract } from './upload-store-contract.js';

const url = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pool = new pg.Pool({ connectionString: url, max: 12 });
const schema = `doorito_test_${randomBytes(4).toString('hex')}`;
const available = await pool.query('SELECT 1').then(
  () => true,
  (error: unknown) => {
    if (process.env.CI) throw new Error(`Postgres at ${url.replace(/\/\/[^@]*@/u, '//…@')} is required in CI: ${String(error)}`);
    console.warn(`\n!! POSTGRES TESTS SKIPPED: no Postgres at PG_TEST_URL (${String(error)})\n`);
    return false;
  },
);

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
      expect(parallel.map((r) => r.applied).sort()).toEqual([0, 0, 0, 2]);
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1`, [fresh]);
      expect(rows[0]?.n).toBe(5);
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
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
        expect(await store.migrate()).toEqual({ applied: 2 });
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
