import { createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, realpath, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import {
  ByteCounter,
  claimAvailableName,
  discard,
  normalizeContent,
  resolveContentType,
  throwIfAborted,
  toStream,
  toWriteError,
  unsignedUrl,
} from '../../content.js';
import { InvalidKeyError, ObjectNotFoundError, StorageError, StoragePermissionError } from '../../errors.js';
import { randomSuffix, validateKey, validatePrefix } from '../../keys.js';
import type {
  CopyOptions,
  ListEntry,
  ObjectStat,
  OpenOptions,
  SaveOptions,
  SaveResult,
  Storage,
  StorageContent,
  StorageUrl,
  UrlOptions,
} from '../../types.js';

/** Options of {@link FileSystemStorage}. */
export interface FileSystemStorageOptions {
  /**
   * The root directory. Created on first use.
   * @default './media'
   */
  location?: string;
  /**
   * The URL prefix that serves `location` (your static route).
   * @default '/media/'
   */
  baseUrl?: string;
  /**
   * Replace existing files by default.
   * @default false
   */
  fileOverwrite?: boolean;
  /**
   * Mode of directories created for keys.
   * @default 0o755
   */
  directoryMode?: number;
  /**
   * Mode of written files (before the process umask).
   * @default 0o644
   */
  fileMode?: number;
  /**
   * Flush each file's data to disk (fsync) before it gets its name, and the directory entry
   * after, so that a name never points at a partial file after a power loss or kernel crash.
   * Turn off only for scratch data.
   * @default true
   */
  fsync?: boolean;
}

const TEMP_PREFIX = '.doorito-';
const TEMP_SUFFIX = '.tmp';
const TEMP_NAME = /^\.doorito-[A-Za-z0-9]{16}\.tmp$/u;

/** Whether a directory entry is one of our in-flight temp files (hidden from `list()`). */
export const isTempFileName = (name: string): boolean => TEMP_NAME.test(name);

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

/**
 * Files on the local disk, for development and single-server deployments.
 *
 * Writes go to a temp file in the target directory and are then claimed under the final name
 * with `link()` (fails if the name exists) or, with overwrite, `rename()` (replaces it
 * atomically): a reader never sees a half-written file. Keys that resolve outside `location`,
 * through `..` or a symlinked directory, are refused.
 *
 * The filesystem keeps no metadata: `stat()` derives the content type from the extension and
 * returns empty `metadata`.
 *
 * @example
 * const storage = new FileSystemStorage({ location: './media', baseUrl: '/media/' })
 * const { key } = await storage.save('uploads/2026/11/report.pdf', stream)
 */
export class FileSystemStorage implements Storage {
  readonly #location: string;
  readonly #baseUrl: string;
  readonly #fileOverwrite: boolean;
  readonly #directoryMode: number;
  readonly #fileMode: number;
  readonly #fsync: boolean;
  #root: Promise<string> | undefined;

  constructor(options: FileSystemStorageOptions = {}) {
    this.#location = path.resolve(options.location ?? './media');
    const baseUrl = options.baseUrl ?? '/media/';
    this.#baseUrl = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
    this.#fileOverwrite = options.fileOverwrite ?? false;
    this.#directoryMode = options.directoryMode ?? 0o755;
    this.#fileMode = options.fileMode ?? 0o644;
    this.#fsync = options.fsync ?? true;
  }

  /** The absolute root directory. */
  get location(): string {
    return this.#location;
  }

  #realRoot(): Promise<string> {
    this.#root ??= mkdir(this.#location, { recursive: true, mode: this.#directoryMode })
      .then(() => realpath(this.#location))
      .catch((error: unknown) => {
        this.#root = undefined;
        throw this.#translate(error, undefined, 'create the storage root');
      });
    return this.#root;
  }

  #inside(root: string, real: string): boolean {
    return real === root || real.startsWith(root + path.sep);
  }

  #escapes(key: string): InvalidKeyError {
    return new InvalidKeyError(key, `it resolves outside the storage root "${this.#location}" through a symlink`);
  }

  /**
   * Create the directories of `segments` under the root, refusing to create anything when an
   * existing ancestor is a symlink that leads out of the root.
   */
  async #createDirectories(key: string, root: string, segments: string[]): Promise<void> {
    let existing = segments.length;
    while (existing > 0) {
      try {
        await stat(path.join(root, ...segments.slice(0, existing)));
        break;
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw this.#translate(error, key, 'create the directory of');
        existing -= 1;
      }
    }
    const base = await realpath(path.join(root, ...segments.slice(0, existing)));
    if (!this.#inside(root, base)) throw this.#escapes(key);
    if (existing < segments.length) {
      await mkdir(path.join(base, ...segments.slice(existing)), { recursive: true, mode: this.#directoryMode });
    }
  }

  /** Resolve `key` to a path inside the root, refusing escapes through symlinked directories. */
  async #resolve(key: string, options: { createParent?: boolean } = {}): Promise<{ file: string; dir: string }> {
    validateKey(key);
    const root = await this.#realRoot();
    const segments = key.split('/');
    const name = segments.pop() as string;
    if (options.createParent === true) await this.#createDirectories(key, root, segments);
    let dir: string;
    try {
      dir = await realpath(path.join(root, ...segments));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') throw new ObjectNotFoundError(key, { cause: error });
      throw this.#translate(error, key, 'resolve');
    }
    if (!this.#inside(root, dir)) throw this.#escapes(key);
    return { file: path.join(dir, name), dir };
  }

  /** A path we may read: the file itself must not be a symlink out of the root. */
  async #resolveExisting(key: string): Promise<string> {
    const { file } = await this.#resolve(key);
    const root = await this.#realRoot();
    let real: string;
    try {
      real = await realpath(file);
    } catch (error) {
      throw this.#translate(error, key, 'read');
    }
    if (!this.#inside(root, real) || real === root) throw this.#escapes(key);
    return real;
  }

  #translate(error: unknown, key: string | undefined, action: string): Error {
    if (error instanceof StorageError) return error;
    const code = errnoCode(error);
    if (key !== undefined && (code === 'ENOENT' || code === 'ENOTDIR')) return new ObjectNotFoundError(key, { cause: error });
    if (code === 'EACCES' || code === 'EPERM') {
      return new StoragePermissionError(
        `Permission denied to ${action} ${key === undefined ? `"${this.#location}"` : `key "${key}"`} under "${this.#location}". ` +
          'Check the owner and mode of the storage directory.',
        { key, cause: error },
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    return new StorageError(`Could not ${action} ${key === undefined ? 'the storage' : `key "${key}"`}: ${reason}`, 'E_STORAGE', {
      key,
      cause: error,
    });
  }

  #tempPath(dir: string): string {
    return path.join(dir, `${TEMP_PREFIX}${randomSuffix(16)}${TEMP_SUFFIX}`);
  }

  /**
   * Give the file at `file` the name `name` (or a free alternative) in `dir`, and drop its old
   * name; returns the key. With overwrite, rename() replaces atomically; without, link() claims
   * the name atomically (it fails on EEXIST, rename() would not).
   */
  async #place(file: string, name: string, dir: string, overwrite: boolean): Promise<string> {
    if (overwrite) {
      await rename(file, path.join(dir, path.posix.basename(name)));
      return name;
    }
    const key = await claimAvailableName(name, async (candidate) => {
      try {
        await link(file, path.join(dir, path.posix.basename(candidate)));
        return true;
      } catch (error) {
        if (errnoCode(error) === 'EEXIST') return false;
        throw error;
      }
    });
    await unlink(file);
    return key;
  }

  /** Make a file's data, or a new directory entry, durable (fsync). */
  async #sync(file: string): Promise<void> {
    if (!this.#fsync) return;
    const handle = await open(file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async save(name: string, content: StorageContent, options: SaveOptions = {}): Promise<SaveResult> {
    const source = normalizeContent(content);
    let temp: string | undefined;
    try {
      throwIfAborted(options.signal, name);
      const { dir } = await this.#resolve(name, { createParent: true });
      temp = this.#tempPath(dir);
      const counter = new ByteCounter(options.onProgress);
      await pipeline(
        toStream(source),
        counter,
        // 1 MiB of buffer lets writes batch (writev) instead of stalling the source every 16 KiB.
        createWriteStream(temp, { flags: 'wx', mode: this.#fileMode, highWaterMark: 1024 * 1024, flush: this.#fsync }),
        options.signal === undefined ? {} : { signal: options.signal },
      );
      const key = await this.#place(temp, name, dir, options.overwrite ?? this.#fileOverwrite);
      temp = undefined;
      await this.#sync(dir);
      return { key, size: counter.bytes, contentType: resolveContentType(key, options.contentType) };
    } catch (error) {
      discard(source);
      if (temp !== undefined) await unlink(temp).catch(() => undefined);
      throw toWriteError(error, name, options.signal);
    }
  }

  async open(key: string, options: OpenOptions = {}): Promise<Readable> {
    const file = await this.#resolveExisting(key);
    try {
      const handle = await open(file, 'r');
      const range = options.range;
      return handle.createReadStream({
        ...(range === undefined ? {} : { start: range.start }),
        ...(range?.end === undefined ? {} : { end: range.end }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      throw this.#translate(error, key, 'open');
    }
  }

  async stat(key: string): Promise<ObjectStat> {
    const file = await this.#resolveExisting(key);
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new ObjectNotFoundError(key);
      return {
        key,
        size: info.size,
        lastModified: info.mtime,
        contentType: resolveContentType(key),
        etag: `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`,
        metadata: {},
      };
    } catch (error) {
      throw this.#translate(error, key, 'stat');
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return false;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    let file: string;
    try {
      ({ file } = await this.#resolve(key));
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return;
      throw error;
    }
    try {
      // unlink removes a symlink itself, never its target, so this cannot reach outside the root.
      await unlink(file);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return;
      throw this.#translate(error, key, 'delete');
    }
  }

  async *list(prefix = ''): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    const root = await this.#realRoot();
    const startDir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    // Never walk through a symlinked directory that leads out of the root.
    const real = await realpath(path.join(root, ...startDir.split('/').filter(Boolean))).catch(() => undefined);
    if (real === undefined || !this.#inside(root, real)) return;
    yield* this.#walk(root, startDir, prefix);
  }

  async *#walk(root: string, relDir: string, prefix: string): AsyncIterable<ListEntry> {
    let entries;
    try {
      entries = await readdir(path.join(root, ...relDir.split('/').filter(Boolean)), { withFileTypes: true });
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return;
      throw this.#translate(error, undefined, 'list');
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const key = `${relDir}${entry.name}`;
      if (entry.isDirectory()) {
        if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) yield* this.#walk(root, `${key}/`, prefix);
      } else if (entry.isFile() && !isTempFileName(entry.name) && key.startsWith(prefix)) {
        const info = await stat(path.join(root, ...key.split('/'))).catch(() => undefined);
        if (info !== undefined) yield { key, size: info.size, lastModified: info.mtime };
      }
    }
  }

  async copy(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const source = await this.#resolveExisting(from);
    const { dir } = await this.#resolve(to, { createParent: true });
    const temp = this.#tempPath(dir);
    try {
      await copyFile(source, temp);
      await this.#sync(temp);
      const key = await this.#place(temp, to, dir, options.overwrite ?? this.#fileOverwrite);
      await this.#sync(dir);
      return { key };
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw this.#translate(error, from, `copy to "${to}"`);
    }
  }

  async move(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const source = await this.#resolveExisting(from);
    const { dir } = await this.#resolve(to, { createParent: true });
    try {
      // The same file under a new name, then the old name dropped: atomic, and no copy.
      const key = await this.#place(source, to, dir, options.overwrite ?? this.#fileOverwrite);
      await this.#sync(dir);
      return { key };
    } catch (error) {
      throw this.#translate(error, from, `move to "${to}"`);
    }
  }

  async url(key: string, options: UrlOptions = {}): Promise<string> {
    return (await this.signedUrl(key, options)).url;
  }

  async signedUrl(key: string, options: UrlOptions = {}): Promise<StorageUrl> {
    return { url: unsignedUrl(this.#baseUrl, validateKey(key), options.download) };
  }


  [inspect.custom](): string {
    return `FileSystemStorage { location: ${JSON.stringify(this.#location)}, baseUrl: ${JSON.stringify(this.#baseUrl)} }`;
  }
}
