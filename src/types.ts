/**
 * The Storage interface, modelled on Django's storage API: `save`, `open`, `exists`, `delete`,
 * `url`, plus `stat`, `list`, `copy` and `move`. Every implementation (memory, filesystem, S3)
 * passes the same conformance suite, so code written against this interface behaves the same
 * on a laptop and in production.
 */
import type { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';

/**
 * What `save()` accepts. Streams are consumed once, as they arrive; nothing is buffered whole.
 *
 * Buffers, strings, `Uint8Array`s and `Blob`s have a known length; Node `Readable`s, Web
 * `ReadableStream`s and async iterables do not.
 */
export type StorageContent =
  | Buffer
  | Uint8Array
  | string
  | Readable
  | ReadableStream<Uint8Array>
  | globalThis.ReadableStream<Uint8Array>
  | Blob
  | AsyncIterable<Uint8Array>;

/** Options of {@link Storage.save}. */
export interface SaveOptions {
  /**
   * The object's media type.
   * @default looked up from the key's extension with `mime-types`, else `application/octet-stream`
   */
  contentType?: string;
  /**
   * Stored `Content-Disposition` (S3 and memory; the filesystem has nowhere to keep it).
   * @example 'attachment; filename="report.pdf"'
   */
  contentDisposition?: string;
  /**
   * Stored `Cache-Control` (S3 and memory).
   * @example 'public, max-age=31536000, immutable'
   */
  cacheControl?: string;
  /**
   * User metadata, a string map (S3 `x-amz-meta-*`; kept by memory; not kept on the filesystem).
   * Names are lower-cased by S3.
   */
  metadata?: Record<string, string>;
  /**
   * Replace an existing object at `name` instead of picking a free alternative name.
   * @default the storage's `fileOverwrite` option (false)
   */
  overwrite?: boolean;
  /** Abort the write. Nothing is left behind and a {@link StorageAbortedError} is thrown. */
  signal?: AbortSignal;
  /** Called as bytes are written, with the running total. */
  onProgress?: (bytesWritten: number) => void;
  /**
   * Called with each candidate key before anything is written under it (on S3, before the
   * name claim or the PUT; on the filesystem, before the temp file gets its name). Return
   * false to skip the candidate: the storage then tries an alternative name (`overwrite`
   * saves fail instead). Throw to abandon the save. The save waits for it.
   *
   * Use it to make the key durable before bytes land under it: record it, and after a crash
   * every object, claim or upload the storage left is under a key you recorded. The
   * UploadService claims keys in its repository this way.
   * @example
   * await storage.save(name, stream, { reserveKey: (key) => db.claimKey(fileId, key) })
   */
  reserveKey?: (key: string) => boolean | Promise<boolean>;
}

/** What `save()` returns. */
export interface SaveResult {
  /** The key actually used: `name`, or a free alternative when `name` was taken. */
  key: string;
  /** Bytes written. */
  size: number;
  /** The stored media type. */
  contentType: string;
  /** The backend's entity tag, when it has one. */
  etag?: string;
}

/**
 * A write the storage started and did not finish: an S3 multipart upload, an S3 name claim
 * (the empty placeholder a streamed save holds while it uploads), or a filesystem temp file.
 * A crashed process leaves these behind; {@link Storage.listPendingWrites} finds them.
 */
export interface PendingWrite {
  kind: 'multipart-upload' | 'claim' | 'temp-file';
  /** The key the write was for; for a temp file, the temp file's own key (its path under the root). */
  key: string;
  /** When the write started (S3: the upload's Initiated time or the claim's LastModified; FS: mtime). */
  startedAt: Date;
  /** The S3 multipart upload id. */
  uploadId?: string;
}

/** Options of {@link Storage.listPendingWrites}. */
export interface PendingWriteQuery {
  /** Only writes for keys under this prefix. @default '' (everything) */
  prefix?: string;
  /** Only writes started before this instant (leave room for writes still in flight). */
  startedBefore?: Date;
}

/** Options of {@link Storage.list}. */
export interface ListOptions {
  /** Only keys after this one (in key order): where the previous page ended. */
  startAfter?: string;
}

/** A byte range; both ends are inclusive, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  /** Last byte (inclusive). @default the end of the object */
  end?: number;
}

/** Options of {@link Storage.open}. */
export interface OpenOptions {
  /** Read only these bytes. */
  range?: ByteRange;
  /** Abort the read. */
  signal?: AbortSignal;
}

/** What `stat()` returns. */
export interface ObjectStat {
  key: string;
  size: number;
  lastModified: Date;
  contentType: string;
  etag?: string;
  /** User metadata (empty on the filesystem). */
  metadata: Record<string, string>;
  contentDisposition?: string;
  cacheControl?: string;
}

/** One entry yielded by `list()`. */
export interface ListEntry {
  key: string;
  size: number;
  lastModified: Date;
  etag?: string;
}

/** Options of {@link Storage.copy} and {@link Storage.move}. */
export interface CopyOptions {
  /**
   * Replace an existing object at `to` instead of picking a free alternative name.
   * @default the storage's `fileOverwrite` option (false)
   */
  overwrite?: boolean;
}

/** Options of {@link Storage.deleteMany}. */
export interface DeleteManyOptions {
  /**
   * Stop sending further deletes. Already aborted: nothing is deleted and a
   * {@link StorageAbortedError} is thrown. Fired midway: the keys not confirmed deleted are
   * reported as failed (see {@link Storage.deleteMany}).
   */
  signal?: AbortSignal;
}

/** Options of {@link Storage.url}. */
export interface UrlOptions {
  /**
   * Lifetime of a presigned URL, in seconds (1 to 604800). Ignored for public URLs.
   * @default the storage's `querystringExpire` (3600)
   */
  expiresIn?: number;
  /**
   * Make the link download as this filename (`Content-Disposition: attachment`, RFC 5987).
   * @example 'Quarterly report.pdf'
   */
  download?: string;
}

/** A shareable URL and, when it is presigned, when it stops working. */
export interface StorageUrl {
  url: string;
  /** Set when the URL is presigned: consumers must fetch before this instant. */
  expiresAt?: Date;
}

/** Options of {@link Storage.presignUpload}. */
export interface PresignUploadOptions {
  /** The object's media type. The upload must send exactly this `Content-Type`. */
  contentType: string;
  /** The exact size in bytes. The upload must send exactly this many bytes. */
  size: number;
  /**
   * The MD5 of the bytes, base64 (as in `Content-MD5`). The upload must send it, and the server
   * refuses other bytes (S3 checks `Content-MD5`; the filesystem and memory check as they stream).
   */
  md5?: string;
  /** Stored `Content-Disposition`; the upload must send exactly this header. */
  contentDisposition?: string;
  /**
   * Lifetime of the URL, in seconds (1 to 604800).
   * @default 3600
   */
  expiresIn?: number;
}

/**
 * Where and how a client uploads the bytes of one object itself, without the app in between:
 * send `method` to `url` with exactly `headers` and a body of exactly the signed size.
 * Browsers set `Content-Length` themselves from the body; it is bound into the signature too.
 * @example
 * await fetch(target.url, { method: target.method, headers: target.headers, body: file })
 */
export interface PresignedUpload {
  method: 'PUT';
  url: string;
  /** Headers to send as they are (`Content-Type`, and `Content-MD5` / `Content-Disposition` when signed). */
  headers: Record<string, string>;
  /** When the URL stops working. */
  expiresAt: Date;
}

/**
 * A presigned POST form (S3 browser-based uploads): submit `fields`, then the file as the
 * last field, as `multipart/form-data` to `url`. The policy binds the exact key, the exact
 * `Content-Type` and the exact size (`content-length-range`), and ends at `expiresAt`.
 * @example
 * const form = new FormData()
 * for (const [name, value] of Object.entries(target.fields)) form.append(name, value)
 * form.append('file', file)
 * await fetch(target.url, { method: 'POST', body: form })
 */
export interface PresignedPost {
  method: 'POST';
  url: string;
  fields: Record<string, string>;
  expiresAt: Date;
}

/**
 * An upload request that arrived at the app for a storage without presigning of its own
 * (filesystem, memory): what {@link Storage.presignUpload} signed, checked by
 * `receiveUpload()`. Framework-neutral: pass Express's `req.originalUrl`, `req.headers` and
 * `req` itself.
 */
export interface SignedUploadRequest {
  /** The request's URL: its path and query (a full URL works too). */
  url: string;
  method?: string;
  headers: Record<string, string | string[] | undefined> | Headers;
  body: StorageContent;
  signal?: AbortSignal;
}

/** Options of {@link DirectMultipartUploads.create}. */
export interface CreateMultipartOptions {
  contentType: string;
  contentDisposition?: string;
}

/** A part the storage holds of an unfinished multipart upload. */
export interface UploadedPart {
  partNumber: number;
  size: number;
  /** The part's entity tag, as CompleteMultipartUpload needs it. */
  etag: string;
}

/**
 * S3 multipart uploads driven by a client: the app creates the upload, presigns each part's
 * PUT (binding its exact size), lists what arrived, completes or aborts it. The client never
 * holds credentials.
 */
export interface DirectMultipartUploads {
  /** Start a multipart upload of `key`; returns its upload id. */
  create(key: string, options: CreateMultipartOptions): Promise<{ uploadId: string }>;
  /** A presigned PUT of one part of exactly `size` bytes. */
  presignPart(key: string, uploadId: string, part: { partNumber: number; size: number; expiresIn?: number }): Promise<PresignedUpload>;
  /** The parts that arrived, in part-number order. */
  listParts(key: string, uploadId: string): Promise<UploadedPart[]>;
  /** Join the parts into the object at `key`. */
  complete(key: string, uploadId: string, parts: ReadonlyArray<Pick<UploadedPart, 'partNumber' | 'etag'>>): Promise<void>;
  /** Abort the upload and free its parts; an upload that is gone already is fine. */
  abort(key: string, uploadId: string): Promise<void>;
}

/**
 * A place to keep files. Keys are `/`-separated relative paths (see `validateKey`).
 *
 * Shared semantics:
 * - `save` never overwrites unless asked: a taken name becomes `<stem>_<7 random chars><ext>`,
 *   claimed atomically, and the key used is returned.
 * - A failed or aborted write leaves nothing behind.
 * - `delete` of a missing key is not an error.
 */
export interface Storage {
  /**
   * Store `content` under `name`, or under a free alternative name when `name` is taken.
   * @example
   * const { key } = await storage.save('uploads/2026/11/report.pdf', stream)
   */
  save(name: string, content: StorageContent, options?: SaveOptions): Promise<SaveResult>;
  /** Stream an object's bytes. Throws {@link ObjectNotFoundError} for a missing key. */
  open(key: string, options?: OpenOptions): Promise<Readable>;
  /** An object's size, type, dates and metadata. Throws {@link ObjectNotFoundError}. */
  stat(key: string): Promise<ObjectStat>;
  /** Whether an object exists at `key`. */
  exists(key: string): Promise<boolean>;
  /** Delete an object; a missing key is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Delete many objects, in as few requests as the backend allows (S3: `DeleteObjects`, 1,000
   * keys per request; filesystem: concurrent unlinks). Missing keys are not an error; duplicate
   * keys count once. Every key is validated first: an invalid one throws
   * {@link InvalidKeyError} and nothing is deleted. Keys that still fail after the backend's
   * retries are never dropped silently: the call rejects with a {@link StorageDeleteError}
   * whose `failures` name each of them (with its cause); every other key is gone.
   *
   * Aborting: a `signal` that is already aborted throws {@link StorageAbortedError} and nothing
   * is deleted (after the keys are validated). One that fires midway stops further requests and
   * rejects with a {@link StorageDeleteError} whose `failures` list every key not confirmed
   * deleted, each with a {@link StorageAbortedError} (a key whose request was in flight may be
   * gone already; deleting it again is harmless).
   *
   * Pass a list (array, Set, generator) of keys: a single string is refused with
   * {@link InvalidKeyError} rather than read as its characters.
   * @example
   * try {
   *   await storage.deleteMany(['uploads/a.txt', 'uploads/b.txt'])
   * } catch (error) {
   *   if (isStorageDeleteError(error)) for (const { key } of error.failures) retryLater(key)
   *   else throw error
   * }
   */
  deleteMany(keys: Iterable<string>, options?: DeleteManyOptions): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order, paging through as needed. */
  list(prefix?: string, options?: ListOptions): AsyncIterable<ListEntry>;
  /** Copy an object; returns the key actually used (see `overwrite`). */
  copy(from: string, to: string, options?: CopyOptions): Promise<{ key: string }>;
  /** Move an object; returns the key actually used (see `overwrite`). */
  move(from: string, to: string, options?: CopyOptions): Promise<{ key: string }>;
  /** A shareable URL for `key` (presigned on private S3 buckets). */
  url(key: string, options?: UrlOptions): Promise<string>;
  /** Like {@link Storage.url}, and also says when a presigned URL expires. */
  signedUrl(key: string, options?: UrlOptions): Promise<StorageUrl>;
  /**
   * Let a client upload one object itself: a URL (presigned on S3; on the filesystem and in
   * memory, the app's own HMAC-signed URL under the storage's base URL, which the app's route
   * hands to `receiveUpload()`) that accepts exactly `options.size` bytes of
   * `options.contentType` at exactly `key`, and nothing after `expiresAt`. The upload
   * replaces what is at `key`, so claim the key first (the UploadService's
   * `createDirectUpload()` does).
   * @example
   * const target = await storage.presignUpload('uploads/2026/12/photo.png', { contentType: 'image/png', size: 48213 })
   */
  presignUpload(key: string, options: PresignUploadOptions): Promise<PresignedUpload>;
  /**
   * A presigned POST form for plain HTML forms, on storages whose server takes them (S3; not
   * OpenStack Swift, which answers every POST upload with 412). Same bounds as
   * {@link Storage.presignUpload}, except `md5`, which a POST policy cannot bind.
   */
  presignPost?(key: string, options: Omit<PresignUploadOptions, 'md5'>): Promise<PresignedPost>;
  /** Client-driven multipart uploads, on storages that have them (S3). */
  readonly multipartUploads?: DirectMultipartUploads;
  /**
   * Writes started and never finished (a crash, or a clean-up that could not reach the
   * server): S3 multipart uploads and name claims, filesystem temp files. Maintenance removes
   * the stale ones with {@link Storage.removePendingWrite}. Every storage of this package has it.
   */
  listPendingWrites?(query?: PendingWriteQuery): AsyncIterable<PendingWrite>;
  /** Remove a pending write (abort the upload, delete the claim or temp file); gone already is fine. */
  removePendingWrite?(write: PendingWrite): Promise<void>;
}
