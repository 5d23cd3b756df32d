/**
 * One promise queue per database file in this process. Why per file and not per store: two
 * stores on the same file in one process would otherwise deadlock the event loop. While store
 * A's transaction awaits (holding SQLite's write lock), store B's `BEGIN IMMEDIATE` waits in
 * SQLite's busy handler, which blocks the only thread, so A can never finish; B fails with
 * SQLITE_BUSY after `busy_timeout`. Queued in JS instead, B simply runs after A.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';

const tails = new Map<unknown, Promise<void>>();

/** The queue key of a connection: the file's real path, or the connection itself when in memory. */
export function queueKey(db: Database.Database): unknown {
  if (db.memory || db.name === '') return db;
  const resolved = path.resolve(db.name);
  try {
    return realpathSync(resolved);
  } catch {
    // Not on disk (yet): the resolved path names it well enough.
    return resolved;
  }
}

/** Run `fn` after everything queued before it under `key`; its result or error is the caller's. */
export function enqueue<T>(key: unknown, fn: () => Promise<T>): Promise<T> {
  const run = (tails.get(key) ?? Promise.resolve()).then(fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  tails.set(key, tail);
  void tail.then(() => {
    if (tails.get(key) === tail) tails.delete(key);
  });
  return run;
}
