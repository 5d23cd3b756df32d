import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidKeyError, ObjectNotFoundError, StorageAbortedError } from '../../errors.js';
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
  PresignUploadOptions,
  PresignedUpload,
  SaveOptions,
  SaveResult,
  SignedUploadRequest,
  Storage,
  StorageContent,
  StorageUrl,
  UrlOptions,
} from '../../types.js';

interface MemoryObject {
  data: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  contentDisposition: string | undefined;
  cacheControl: string | undefined;
  lastModified: Date;
  etag: string;
}

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * Replace existing objects by default.
   * @default false
   */
  fileOverwrite?: boolean;
  /**
   * Prefix of the URLs that `url()` returns.
   * @default 'memory://'
   */
  baseUrl?: string;
  /**
   * The key of the HMAC that signs `presignUpload()` URLs, at least 32 bytes. Set it when
   * several processes serve uploads, or URLs must outlive a restart.
   * @default 32 random bytes per instance
   * @example { uploadSecret: process.env.UPLOAD_URL_SECRET }
   */
  uploadSecret?: string | Uint8Array;
}

/**
 * The reference Storage: everything lives in a Map. Use it as a test double; it follows the
 * same conformance suite as the filesystem and S3 storages. (Being in memory, it necessarily
 * holds every object's bytes.)
 *
 * @example
 * const storage = new MemoryStorage()
 * const { key } = await storage.save('notes/a.txt', 'hello')
 */
export class MemoryStorage implements Storage {
  readonly #objects = new Map<string, MemoryObject>();
  readonly #fileOverwrite: boolean;
  readonly #baseUrl: string;
  readonly #uploads: UploadUrlSigner;

  constructor(options: MemoryStorageOptions = {}) {
    this.#fileOverwrite = options.fileOverwrite ?? false;
    this.#baseUrl = options.baseUrl ?? 'memory://';
    this.#uploads = new UploadUrlSigner(this.#baseUrl, options.uploadSecret);
  }

  async save(name: string, content: StorageContent, options: SaveOptions = {}): Promise<SaveResult> {
    const source = normalizeContent(content);
    try {
      validateKey(name);
      throwIfAborted(options.signal, name);
    } catch (error) {
      discard(source);
      throw error;
    }
    const chunks: Buffer[] = [];
    const counter = new ByteCounter(options.onProgress);
    try {
      await pipeline(
        toStream(source),
        counter,
        async (chunksIn: AsyncIterable<Buffer>) => {
          for await (const chunk of chunksIn) chunks.push(chunk);
        },
        options.signal === undefined ? {} : { signal: options.signal },
      );
    } catch (error) {
      throw toWriteError(error, name, options.signal);
    }
    const data = Buffer.concat(chunks);
    const object: MemoryObject = {
      data,
      contentType: resolveContentType(name, options.contentType),
      metadata: { ...options.metadata },
      contentDisposition: options.contentDisposition,
      cacheControl: options.cacheControl,
      lastModified: new Date(),
      etag: `"${createHash('md5').update(data).digest('hex')}"`,
    };
    const overwrite = options.overwrite ?? this.#fileOverwrite;
    let key: string;
    try {
      // Check-and-set in one synchronous step (after the caller's reserveKey) is atomic in one JS thread.
      if (overwrite) await reserveExact(name, options.reserveKey);
      key = overwrite
        ? name
        : await claimAvailableName(
            name,
            (candidate) => Promise.resolve(!this.#objects.has(candidate) && this.#set(candidate, object)),
            options.reserveKey,
          );
    } catch (error) {
      throw toWriteError(error, name, options.signal);
    }
    if (overwrite) this.#objects.set(key, object);
    return { key, size: data.length, contentType: object.contentType, etag: object.etag };
  }

  #set(key: string, object: MemoryObject): true {
    this.#objects.set(key, object);
    return true;
  }

  #get(key: string): MemoryObject {
    validateKey(key);
    const object = this.#objects.get(key);
    if (object === undefined) throw new ObjectNotFoundError(key);
    return object;
  }

  async open(key: string, options: OpenOptions = {}): Promise<Readable> {
    const { data } = this.#get(key);
    const start = options.range?.start ?? 0;
    const end = options.range?.end === undefined ? data.length : options.range.end + 1;
    return Readable.from([data.subarray(start, end)], { objectMode: false });
  }

  async stat(key: string): Promise<ObjectStat> {
    const object = this.#get(key);
    return {
      key,
      size: object.data.length,
      lastModified: object.lastModified,
      contentType: object.contentType,
      etag: object.etag,
      metadata: { ...object.metadata },
      ...(object.contentDisposition === undefined ? {} : { contentDisposition: object.contentDisposition }),
      ...(object.cacheControl === undefined ? {} : { cacheControl: object.cacheControl }),
    };
  }

  async exists(key: string): Promise<boolean> {
    validateKey(key);
    return this.#objects.has(key);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    this.#objects.delete(key);
  }

  async deleteMany(keys: Iterable<string>, options: DeleteManyOptions = {}): Promise<void> {
    if (typeof keys === 'string') throw new InvalidKeyError(keys, 'deleteMany() takes a list of keys, not one string: wrap it, deleteMany([key])');
    // Every key is checked before the first is deleted.
    const unique = new Set(Array.from(keys, (key) => validateKey(key)));
    if (options.signal?.aborted === true) throw new StorageAbortedError(undefined, { cause: options.signal.reason });
    for (const key of unique) this.#objects.delete(key);
  }

  async *list(prefix = '', options: ListOptions = {}): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    const after = options.startAfter;
    const keys = [...this.#objects.keys()].filter((key) => key.startsWith(prefix) && (after === undefined || key > after)).sort();
    for (const key of keys) {
      const object = this.#objects.get(key);
      if (object !== undefined) {
        yield { key, size: object.data.length, lastModified: object.lastModified, etag: object.etag };
      }
    }
  }

  async copy(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const object = this.#get(from);
    validateKey(to);
    const copy = { ...object, metadata: { ...object.metadata }, lastModified: new Date() };
    if (options.overwrite ?? this.#fileOverwrite) {
      this.#objects.set(to, copy);
      return { key: to };
    }
    const key = await claimAvailableName(to, (candidate) => Promise.resolve(!this.#objects.has(candidate) && this.#set(candidate, copy)));
    return { key };
  }

  async move(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const result = await this.copy(from, to, options);
    if (result.key !== from) this.#objects.delete(from);
    return result;
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

  /** Nothing: a memory save takes its key in one step, with all its bytes. */
  async *listPendingWrites(): AsyncIterable<PendingWrite> {
    // A memory save is never half-done.
  }

  async removePendingWrite(): Promise<void> {
    // Nothing is ever pending.
  }

}
