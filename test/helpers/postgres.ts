/**
 * The Postgres the store suites run on: PG_TEST_URL, default postgres://postgres@127.0.0.1:5432/test
 * (trust auth). Without one, the suites skip with a warning, and CI fails instead.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { migrate } from '../../src/postgres/index.js';

export const PG_TEST_URL = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A pool on the test database, and whether the database answered (the pool is closed when not). */
export async function testPool(max = 12): Promise<{ pool: pg.Pool; available: boolean }> {
  const pool = new pg.Pool({ connectionString: PG_TEST_URL, max });
  const available = await pool.query('SELECT 1').then(
    () => true,
    (error: unknown) => {
      const where = PG_TEST_URL.replace(/\/\/[^@]*@/u, '//…@');
      if (process.env.CI) throw new Error(`Postgres at ${where} is required in CI: ${String(error)}`);
      console.warn(`\n!! POSTGRES TESTS SKIPPED: no Postgres at PG_TEST_URL (${String(error)})\n`);
      return false;
    },
  );
  if (!available) await pool.end();
  return { pool, available };
}

/** Empty every table of the store in `schema` (one statement, so foreign keys between them do not matter). */
export async function truncateStore(pool: pg.Pool, schema: string): Promise<void> {
  const tables = ['upload_file', 'upload_batch', 'webhook_delivery', 'outbox_event', 'webhook_endpoint'];
  await pool.query(`TRUNCATE ${tables.map((table) => `"${schema}".${table}`).join(', ')}`);
}

/**
 * Inside a describe: migrate `schema` before its tests, empty it after each, drop it and end
 * the pool after the last.
 */
export function useMigratedSchema(pool: pg.Pool, schema: string): void {
  beforeAll(async () => {
    await migrate(pool, { schema });
  });
  afterEach(async () => {
    await truncateStore(pool, schema);
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });
}
