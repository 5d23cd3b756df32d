/** One transaction on a connection of the pool (or the single client's turn). */
import type { PoolLike, Queryable } from './migrations.js';

/**
 * Run `fn` between BEGIN and COMMIT on one connection; ROLLBACK when it throws. A connection
 * that could not even roll back is not given back to the pool.
 */
export async function inTransaction<T>(pool: PoolLike, fn: (db: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}
