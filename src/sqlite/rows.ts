/**
 * SQLite rows (instants as INTEGER ms, JSON as TEXT, booleans as 0/1) to model objects, and the
 * prepared-statement cache of one connection.
 */
import type Database from 'better-sqlite3';
import { rowMappers, type Row } from '../upload/sql-rows.js';

export type { Row } from '../upload/sql-rows.js';

/** A Date as stored: INTEGER milliseconds since the epoch. */
export const ms = (date: Date): number => date.getTime();

export const { toFile, toBatch, toEvent, toDelivery, toEndpoint, toWebhookDelivery } = rowMappers({
  // Number(): works whether or not the host turned on `safeIntegers` (bigint columns).
  date: (value) => new Date(Number(value)),
  json: (value) => JSON.parse(String(value)),
  bool: (value) => Number(value) === 1,
});

/** The statements of one connection, each prepared once (SQLite compiles them). */
export class Statements {
  readonly #cache = new Map<string, Database.Statement<unknown[], Row>>();
  #begin: Database.Statement | undefined;
  #commit: Database.Statement | undefined;
  #rollback: Database.Statement | undefined;

  constructor(readonly db: Database.Database) {}

  #prepare(sql: string): Database.Statement<unknown[], Row> {
    let statement = this.#cache.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare<unknown[], Row>(sql);
      this.#cache.set(sql, statement);
    }
    return statement;
  }

  /**
   * Run `fn` in a `BEGIN IMMEDIATE` transaction (the write lock from the first read), or inside
   * the one already open on the connection (the store's `transaction()`).
   */
  write<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    // Prepared once: a db.transaction() wrapper per call costs more than a small write itself.
    this.#begin ??= this.db.prepare('BEGIN IMMEDIATE');
    this.#commit ??= this.db.prepare('COMMIT');
    this.#rollback ??= this.db.prepare('ROLLBACK');
    this.#begin.run();
    try {
      const result = fn();
      this.#commit.run();
      return result;
    } catch (error) {
      // A failed COMMIT (or an error SQLite rolled back by itself) may have ended it already.
      if (this.db.inTransaction) this.#rollback.run();
      throw error;
    }
  }

  run(sql: string, ...params: unknown[]): Database.RunResult {
    return this.#prepare(sql).run(...params);
  }

  one(sql: string, ...params: unknown[]): Row | undefined {
    return this.#prepare(sql).get(...params);
  }

  all(sql: string, ...params: unknown[]): Row[] {
    return this.#prepare(sql).all(...params);
  }
}
