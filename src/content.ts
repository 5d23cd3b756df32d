/**
 * Turning every accepted kind of content into one shape, and the helpers every backend
 * shares while writing: content types, byte counting, abort handling, name claiming.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import mime from 'mime-types';
import { StorageAbortedError, StorageWriteError, isStorageError } from './errors.js';
import { alternativeName, encodeKeyForUrl } from './keys.js';
import type { SaveOptions, StorageContent } from './types.js';

/** Content whose bytes are already in memory, or a stream read once. */
export type NormalizedContent =
  | { kind: 'bytes'; bytes: Buffer; size: number }
  | { kind: 'stream'; stream: Readable; size: number | undefined };

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** Accept any {@link StorageContent} and expose it as bytes or as a Node stream. */
export function normalizeContent(content: StorageContent): NormalizedContent {
  if (typeof content === 'string') {
    const bytes = Buffer.from(content, 'utf8');
    return { kind: 'bytes', bytes, size: bytes.length };
  }
  if (Buffer.isBuffer(content)) return { kind: 'bytes', bytes: content, size: content.length };
  if (content instanceof Uint8Array) {
    const bytes = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
    return { kind: 'bytes', bytes, size: bytes.length };
  }
  if (content instanceof Readable) return { kind: 'stream', stream: content, size: undefined };
  if (typeof Blob !== 'undefined' && content instanceof Blob) {
    return { kind: 'stream', stream: Readable.fromWeb(content.stream() as NodeWebReadableStream<Uint8Array>), size: content.size };
  }
  if (content instanceof NodeWebReadableStream || content instanceof globalThis.ReadableStream) {
    return { kind: 'stream', stream: Readable.fromWeb(content as NodeWebReadableStream<Uint8Array>), size: undefined };
  }
  if (isAsyncIterable(content)) return { kind: 'stream', stream: Readable.from(content, { objectMode: false }), size: undefined };
  throw new TypeError(
    'save() content must be a Buffer, Uint8Array, string, Readable, ReadableStream, Blob or AsyncIterable<Uint8Array>',
  );
}

/** The source as a stream, whatever its kind. */
export function toStream(content: NormalizedContent): Readable {
  return content.kind === 'bytes' ? Readable.from([content.bytes], { objectMode: false }) : content.stream;
}

/** Release a source the caller handed us when we will not read it (or not to the end). */
export function discard(content: NormalizedContent): void {
  if (content.kind === 'stream' && !content.stream.destroyed) content.stream.destroy();
}

/** The explicit type, else the type of the key's extension, else `application/octet-stream`. */
export function resolveContentType(key: string, explicit?: string): string {
  if (explicit !== undefined && explicit !== '') return explicit;
  return mime.lookup(key) || 'application/octet-stream';
}

/** A pass-through stream that counts bytes and reports progress. */
export class ByteCounter extends Transform {
  bytes = 0;
  readonly #onProgress: ((bytes: number) => void) | undefined;

  constructor(onProgress?: (bytes: number) => void) {
    super();
    this.#onProgress = onProgress;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.#onProgress?.(this.bytes);
    callback(null, chunk);
  }
}

/** Throw a {@link StorageAbortedError} if `signal` is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, key: string): void {
  if (signal?.aborted === true) throw new StorageAbortedError(key, { cause: signal.reason });
}

/**
 * Map an error from a write to a typed {@link StorageError}: already-typed errors pass
 * through, an abort (by our signal) becomes {@link StorageAbortedError}, the rest
 * {@link StorageWriteError} naming the key.
 */
export function toWriteError(error: unknown, key: string, signal?: AbortSignal): Error {
  if (signal?.aborted === true) return new StorageAbortedError(key, { cause: signal.reason ?? error });
  if (isStorageError(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StorageWriteError(
    `Could not write key "${key}": ${reason}. Nothing was kept; check the source stream and the storage, then retry.`,
    { key, cause: error },
  );
}

/** How many alternative names to try before giving up (each try is a fresh random suffix). */
export const MAX_NAME_ATTEMPTS = 100;

/**
 * Claim a free name: try `name`, then alternatives, until `tryClaim` succeeds. `tryClaim`
 * must claim atomically (link(), If-None-Match: *, a synchronous map check) and return
 * false only when the name was already taken. `reserve` (the caller's
 * {@link SaveOptions.reserveKey}) is asked first for each candidate; false skips it.
 */
export async function claimAvailableName(
  name: string,
  tryClaim: (candidate: string) => Promise<boolean>,
  reserve?: SaveOptions['reserveKey'],
): Promise<string> {
  let candidate = name;
  for (let attempt = 0; attempt < MAX_NAME_ATTEMPTS; attempt += 1) {
    if ((reserve === undefined || (await reserve(candidate))) && (await tryClaim(candidate))) return candidate;
    candidate = alternativeName(name);
  }
  throw new StorageWriteError(
    `Could not find a free name for "${name}" after ${MAX_NAME_ATTEMPTS} attempts. ` +
      'Pick another name, or pass { overwrite: true } to replace the object.',
    { key: name },
  );
}

/** For an `overwrite` save: the caller's `reserveKey` must accept `name` itself. */
export async function reserveExact(name: string, reserve: SaveOptions['reserveKey']): Promise<void> {
  if (reserve !== undefined && !(await reserve(name))) {
    throw new StorageWriteError(`Could not write key "${name}": the caller's reserveKey() refused it, and overwrite allows no other name.`, {
      key: name,
    });
  }
}

/** RFC 6266 / RFC 5987 `attachment` disposition for a download filename. */
export function attachmentDisposition(name: string): string {
  // A lone surrogate cannot be percent-encoded; replace it rather than throw a URIError.
  const filename = name.toWellFormed();
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/gu, '_');
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/gu,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/**
 * A URL for storages without signing (filesystem, memory): `baseUrl` + the percent-encoded key,
 * plus the download disposition as `response-content-disposition`, as S3 takes it, for the
 * static route to honour.
 */
export function unsignedUrl(baseUrl: string, key: string, download: string | undefined): string {
  const query = download === undefined ? '' : `?response-content-disposition=${encodeURIComponent(attachmentDisposition(download))}`;
  return `${baseUrl}${encodeKeyForUrl(key)}${query}`;
}
