import { createWriteStream } from 'node:fs';
import { copyFile, link, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import {
  ByteCounter,
  claimAvailableName,
  discard,
  normalizeContent,
  reserveExact,
  resolveContentType,
  throwIfAborted,
  toStream,
  toWriteError,
  unsignedUrl,
} from '../../content.js';
import { ObjectNotFoundError } from '../../errors.js';
import { validateKey, validatePrefix } from '../../keys.js';
import { UploadUrlSigner } from '../../signed-upload.js';
import type {
  CopyOptions,
  DeleteManyOptions,
  ListEntry,
  ListOptions,
  ObjectStat,
  OpenOptions,
  PendingWrite,
  PendingWriteQuery,
  PresignUploadOptions,
  PresignedUpload,
  SignedUploadRequest,
  SaveOptions,
  SaveResult,
  Storage,
  StorageContent,
  StorageUrl,
  UrlOptions,
} from '../../types.js';
import { deleteFiles } from './fs-delete-many.js';
import { RootedPaths, errnoCode, isTempFileName } from './fs-paths.js';
import { walk } from './fs-walk.js';

export { isTempFileName };

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
  /**
   * The key of the HMAC that signs `presignUpload()` URLs, at least 32 bytes. Set it when
   * several processes serve uploads, or URLs must outlive a restart.
   * @default 32 random bytes per instance
   * @example { uploadSecret: process.env.UPLOAD_URL_SECRET }
   */
  uploadSecret?: string | Uint8Array;
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
  readonly #paths: RootedPaths;
  readonly #baseUrl: string;
  readonly #fileOverwrite: boolean;
  readonly #fileMode: number;
  readonly #fsync: boolean;
  readonly #uploads: UploadUrlSigner;

  constructor(options: FileSystemStorageOptions = {}) {
    this.#paths = new RootedPaths(path.resolve(options.location ?? './media'), options.directoryMode ?? 0o755);
    const baseUrl = options.baseUrl ?? '/media/';
    this.#baseUrl = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
    this.#fileOverwrite = options.fileOverwrite ?? false;
    this.#fileMode = options.fileMode ?? 0o644;
    this.#fsync = options.fsync ?? true;
    this.#uploads = new UploadUrlSigner(this.#baseUrl, options.uploadSecret);
  }

  /** The absolute root directory. */
  get location(): string {
    return this.#paths.location;
  }

  /**
   * Give the file at `file` the name `name` (or a free alternative) in `dir`, and drop its old
   * name; returns the key. With overwrite, rename() replaces atomically; without, link() claims
   * the name atomically (it fails on EEXIST, rename() would not).
   */
  async #place(file: string, name: string, dir: string, overwrite: boolean, reserve?: SaveOptions['reserveKey']): Promise<string> {
    if (overwrite) {
      await reserveExact(name, reserve);
      await rename(file, path.join(dir, path.posix.basename(name)));
      return name;
    }
    const key = await claimAvailableName(
      name,
      async (candidate) => {
        try {
          await link(file, path.join(dir, path.posix.basename(candidate)));
          return true;
        } catch (error) {
          if (errnoCode(error) === 'EEXIST') return false;
          throw error;
        }
      },
      reserve,
    );
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
      const { dir } = await this.#paths.resolve(name, { createParent: true });
      temp = this.#paths.tempPath(dir);
      const counter = new ByteCounter(options.onProgress);
      await pipeline(
        toStream(source),
        counter,
        // 1 MiB of buffer lets writes batch (writev) instead of stalling the source every 16 KiB.
        createWriteStream(temp, { flags: 'wx', mode: this.#fileMode, highWaterMark: 1024 * 1024, flush: this.#fsync }),
        options.signal === undefined ? {} : { signal: options.signal },
      );
      const key = await this.#place(temp, name, dir, options.overwrite ?? this.#fileOverwrite, options.reserveKey);
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
    const file = await this.#paths.resolveExisting(key);
    try {
      const handle = await open(file, 'r');
      const range = options.range;
      return handle.createReadStream({
        ...(range === undefined ? {} : { start: range.start }),
        ...(range?.end === undefined ? {} : { end: range.end }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      throw this.#paths.translate(error, key, 'open');
    }
  }

  async stat(key: string): Promise<ObjectStat> {
    const file = await this.#paths.resolveExisting(key);
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
      throw this.#paths.translate(error, key, 'stat');
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
      ({ file } = await this.#paths.resolve(key));
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return;
      throw error;
    }
    try {
      // unlink removes a symlink itself, never its target, so this cannot reach outside the root.
      await unlink(file);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return;
      throw this.#paths.translate(error, key, 'delete');
    }
  }

  /** Concurrent unlinks (16 at a time), each one a {@link FileSystemStorage.delete}. */
  async deleteMany(keys: Iterable<string>, options: DeleteManyOptions = {}): Promise<void> {
    await deleteFiles(keys, (key) => this.delete(key), options.signal);
  }

  async *list(prefix = '', options: ListOptions = {}): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    for await (const entry of walk(this.#paths, prefix, options.startAfter)) {
      if (!entry.temp) yield { key: entry.key, size: entry.info.size, lastModified: entry.info.mtime };
    }
  }

  /** Temp files of saves and copies that never finished (a crash, or a failed unlink). */
  async *listPendingWrites(query: PendingWriteQuery = {}): AsyncIterable<PendingWrite> {
    const prefix = validatePrefix(query.prefix ?? '');
    // A temp file sits in the directory of the key it was for.
    const dirPrefix = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    for await (const entry of walk(this.#paths, dirPrefix)) {
      if (!entry.temp || (query.startedBefore !== undefined && !(entry.info.mtime < query.startedBefore))) continue;
      yield { kind: 'temp-file', key: entry.key, startedAt: entry.info.mtime };
    }
  }

  async removePendingWrite(write: PendingWrite): Promise<void> {
    if (write.kind !== 'temp-file') return;
    let file: string | undefined;
    try {
      file = await this.#paths.resolveTemp(write.key);
      if (file !== undefined) await unlink(file);
    } catch (error) {
      if (error instanceof ObjectNotFoundError || errnoCode(error) === 'ENOENT') return;
      throw this.#paths.translate(error, write.key, 'remove the temp file');
    }
  }

  async copy(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const source = await this.#paths.resolveExisting(from);
    const { dir } = await this.#paths.resolve(to, { createParent: true });
    const temp = this.#paths.tempPath(dir);
    try {
      await copyFile(source, temp);
      await this.#sync(temp);
      const key = await this.#place(temp, to, dir, options.overwrite ?? this.#fileOverwrite);
      await this.#sync(dir);
      return { key };
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw this.#paths.translate(error, from, `copy to "${to}"`);
    }
  }

  async move(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const source = await this.#paths.resolveExisting(from);
    const { dir } = await this.#paths.resolve(to, { createParent: true });
    try {
      // The same file under a new name, then the old name dropped: atomic, and no copy.
      const key = await this.#place(source, to, dir, options.overwrite ?? this.#fileOverwrite);
      await this.#sync(dir);
      return { key };
    } catch (error) {
      throw this.#paths.translate(error, from, `move to "${to}"`);
    }
  }

  /**
   * An HMAC-signed upload URL under the base URL (see {@link Storage.presignUpload}); the app's
   * route for it calls {@link receiveUpload}.
   */
  async presignUpload(key: string, options: PresignUploadOptions): Promise<PresignedUpload> {
    return this.#uploads.sign(key, options);
  }

  /**
   * Check a request to a `presignUpload()` URL (signature, expiry, headers) and stream its body
   * to the signed key; a body of other bytes than signed is refused and leaves nothing.
   * @throws SignedUploadError (answer with its `status`)
   * @example
   * app.put('/media/*', async (req, res) => {
   *   try {
   *     await storage.receiveUpload({ url: req.originalUrl, method: req.method, headers: req.headers, body: req })
   *     res.status(200).end()
   *   } catch (error) {
   *     res.status(isSignedUploadError(error) ? error.status : 500).send(error.message)
   *   }
   * })
   */
  async receiveUpload(request: SignedUploadRequest): Promise<SaveResult> {
    return this.#uploads.receive(this, request);
  }

  async url(key: string, options: UrlOptions = {}): Promise<string> {
    return (await this.signedUrl(key, options)).url;
  }

  async signedUrl(key: string, options: UrlOptions = {}): Promise<StorageUrl> {
    return { url: unsignedUrl(this.#baseUrl, validateKey(key), options.download) };
  }


  [inspect.custom](): string {
    return `FileSystemStorage { location: ${JSON.stringify(this.#paths.location)}, baseUrl: ${JSON.stringify(this.#baseUrl)} }`;
  }
}
