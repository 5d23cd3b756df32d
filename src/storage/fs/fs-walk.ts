/**
 * Walking the storage root in key order: the objects for `list()`, the temp files for
 * `listPendingWrites()`.
 */
import type { Stats } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, isTempFileName, type RootedPaths } from './fs-paths.js';

export interface WalkEntry {
  /** The file's key: its path under the root, `/`-separated. */
  key: string;
  temp: boolean;
  info: Stats;
}

/**
 * Every regular file whose key starts with `prefix` (and comes after `startAfter`), in key
 * order, never following a symlinked directory out of the root.
 */
export async function* walk(paths: RootedPaths, prefix: string, startAfter?: string): AsyncIterable<WalkEntry> {
  const root = await paths.root();
  const startDir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  const real = await realpath(path.join(root, ...startDir.split('/').filter(Boolean))).catch(() => undefined);
  if (real === undefined || !paths.inside(root, real)) return;
  yield* walkDir(paths, root, startDir, prefix, startAfter);
}

async function* walkDir(paths: RootedPaths, root: string, relDir: string, prefix: string, startAfter: string | undefined): AsyncIterable<WalkEntry> {
  let entries;
  try {
    entries = await readdir(path.join(root, ...relDir.split('/').filter(Boolean)), { withFileTypes: true });
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return;
    throw paths.translate(error, undefined, 'list');
  }
  // Key order: a directory "a" sorts as "a/", after "a-b" and before "a0", as S3 lists keys.
  const sortKey = (entry: { name: string; isDirectory(): boolean }) => (entry.isDirectory() ? `${entry.name}/` : entry.name);
  entries.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
  for (const entry of entries) {
    const key = `${relDir}${entry.name}`;
    if (entry.isDirectory()) {
      const dirKey = `${key}/`;
      if (startAfter !== undefined && dirKey < startAfter && !startAfter.startsWith(dirKey)) continue;
      if (dirKey.startsWith(prefix) || prefix.startsWith(dirKey)) yield* walkDir(paths, root, dirKey, prefix, startAfter);
    } else if (entry.isFile() && key.startsWith(prefix) && (startAfter === undefined || key > startAfter)) {
      const info = await stat(path.join(root, ...key.split('/'))).catch(() => undefined);
      if (info !== undefined) yield { key, temp: isTempFileName(entry.name), info };
    }
  }
}
