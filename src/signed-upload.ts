/**
 * Direct uploads for storages that cannot presign (filesystem, memory): the app signs its own
 * upload URL, under the storage's base URL, with an HMAC-SHA256 over everything the upload may
 * be (method, key, expiry, size, type, MD5, disposition), and its route hands the request to
 * `receiveUpload()`, which checks each of them before and while it streams the body into the
 * storage. The same contract as an S3 presigned PUT, so development needs no S3.
 *
 * Shared by the presigning adapters too: {@link checkPresignOptions} is the one validation of
 * `presignUpload()` options.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { normalizeContent, toStream } from './content.js';
import { SignedUploadError, StorageConfigError } from './errors.js';
import { encodeKeyForUrl, validateKey } from './keys.js';
import type { PresignUploadOptions, PresignedUpload, SaveOptions, SaveResult, SignedUploadRequest, StorageContent } from './types.js';

/** The longest lifetime of a presigned URL (SigV4's limit, 7 days), in seconds. */
export const MAX_PRESIGN_EXPIRES_IN = 604800;
/** The default lifetime of an upload URL, in seconds. */
export const DEFAULT_UPLOAD_EXPIRES_IN = 3600;

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(?:\s*;\s*[a-z0-9!#$&^_.+-]+=(?:[a-z0-9!#$&^_.+-]+|"[^"\r\n]*"))*$/iu;
const MD5_BASE64 = /^[A-Za-z0-9+/]{22}==$/u;
// A header value we send as is: printable, no CR/LF.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/u;

const bad = (option: string, message: string): StorageConfigError =>
  new StorageConfigError(`presignUpload(): ${option} ${message}`, { option });

/** Validate `presignUpload()` options; returns the lifetime in seconds. */
export function checkPresignOptions(options: PresignUploadOptions, maxSize = Number.MAX_SAFE_INTEGER): number {
  if (typeof options.contentType !== 'string' || !MEDIA_TYPE.test(options.contentType)) {
    throw bad('contentType', `must be a media type such as "image/png"; got ${JSON.stringify(options.contentType)}.`);
  }
  if (!Number.isSafeInteger(options.size) || options.size < 0 || options.size > maxSize) {
    throw bad('size', `must be a whole number of bytes from 0 to ${maxSize}; got ${String(options.size)}.`);
  }
  if (options.md5 !== undefined && !MD5_BASE64.test(options.md5)) {
    throw bad('md5', 'must be the base64 of a 16-byte MD5 digest (24 characters, as in Content-MD5).');
  }
  if (options.contentDisposition !== undefined && !HEADER_VALUE.test(options.contentDisposition)) {
    throw bad('contentDisposition', 'must be a header value without control characters.');
  }
  const expiresIn = options.expiresIn ?? DEFAULT_UPLOAD_EXPIRES_IN;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_PRESIGN_EXPIRES_IN) {
    throw bad('expiresIn', `must be a whole number of seconds from 1 to ${MAX_PRESIGN_EXPIRES_IN}; got ${String(expiresIn)}.`);
  }
  return expiresIn;
}

/** The headers an upload must send: what its signature binds besides the key and the size. */
export function uploadHeaders(options: Pick<PresignUploadOptions, 'contentType' | 'md5' | 'contentDisposition'>): Record<string, string> {
  return {
    'Content-Type': options.contentType,
    ...(options.md5 === undefined ? {} : { 'Content-MD5': options.md5 }),
    ...(options.contentDisposition === undefined ? {} : { 'Content-Disposition': options.contentDisposition }),
  };
}

const P = {
  expires: 'X-Doorito-Expires',
  size: 'X-Doorito-Size',
  type: 'X-Doorito-Content-Type',
  md5: 'X-Doorito-Content-MD5',
  disposition: 'X-Doorito-Content-Disposition',
  signature: 'X-Doorito-Signature',
} as const;

/** What an upload URL allows, as signed. */
interface Grant {
  key: string;
  /** Unix seconds. */
  expires: number;
  size: number;
  contentType: string;
  md5?: string;
  contentDisposition?: string;
}

/** What receiving an upload needs from the storage it lands in. */
export interface UploadReceiver {
  save(name: string, content: StorageContent, options: SaveOptions): Promise<SaveResult>;
}

/**
 * Signs and checks upload URLs for one storage. The secret never leaves it: not in a URL, an
 * error or `inspect()`.
 */
export class UploadUrlSigner {
  readonly #baseUrl: string;
  readonly #secret: Buffer;

  /**
   * @param baseUrl the storage's base URL (ends with `/`)
   * @param secret at least 32 bytes; a random one when not given (then URLs work only with this
   *   instance, until the process ends)
   */
  constructor(baseUrl: string, secret: string | Uint8Array | undefined, option = 'uploadSecret') {
    this.#baseUrl = baseUrl;
    const bytes = secret === undefined ? randomBytes(32) : Buffer.from(secret);
    if (bytes.length < 32) {
      throw new StorageConfigError(`${option} must be at least 32 bytes (it keys the HMAC of upload URLs); generate one with \`openssl rand -base64 32\`.`, { option });
    }
    this.#secret = bytes;
  }

  #mac(grant: Grant): Buffer {
    const fields = ['PUT', grant.key, grant.expires, grant.size, grant.contentType, grant.md5 ?? '', grant.contentDisposition ?? ''];
    return createHmac('sha256', this.#secret).update(JSON.stringify(fields)).digest();
  }

  /** An upload URL for `key` (validated) under the base URL. */
  sign(key: string, options: PresignUploadOptions, now = Date.now()): PresignedUpload {
    validateKey(key);
    const expiresIn = checkPresignOptions(options);
    const grant: Grant = {
      key,
      expires: Math.floor(now / 1000) + expiresIn,
      size: options.size,
      contentType: options.contentType,
      ...(options.md5 === undefined ? {} : { md5: options.md5 }),
      ...(options.contentDisposition === undefined ? {} : { contentDisposition: options.contentDisposition }),
    };
    const query = new URLSearchParams({ [P.expires]: String(grant.expires), [P.size]: String(grant.size), [P.type]: grant.contentType });
    if (grant.md5 !== undefined) query.set(P.md5, grant.md5);
    if (grant.contentDisposition !== undefined) query.set(P.disposition, grant.contentDisposition);
    query.set(P.signature, this.#mac(grant).toString('hex'));
    return {
      method: 'PUT',
      url: `${this.#baseUrl}${encodeKeyForUrl(key)}?${query.toString()}`,
      headers: uploadHeaders(options),
      expiresAt: new Date(grant.expires * 1000),
    };
  }

  /** The key a request URL addresses: its path after the base URL's. */
  #keyOf(url: string): { key: string; query: URLSearchParams } {
    const split = url.indexOf('?');
    const path = split === -1 ? url : url.slice(0, split);
    const query = new URLSearchParams(split === -1 ? '' : url.slice(split + 1));
    let rest: string | undefined;
    if (path.startsWith(this.#baseUrl)) rest = path.slice(this.#baseUrl.length);
    else {
      // An absolute base URL (`http://host/media/`) and a path-only request URL (`/media/…`), or the other way round.
      const basePath = pathOf(this.#baseUrl);
      const requestPath = pathOf(path);
      if (basePath !== undefined && requestPath !== undefined && requestPath.startsWith(basePath)) rest = requestPath.slice(basePath.length);
    }
    if (rest === undefined || rest === '') throw new SignedUploadError('malformed', `The upload URL is not under this storage's base URL (${this.#baseUrl}).`);
    let key: string;
    try {
      key = rest.split('/').map(decodeURIComponent).join('/');
    } catch (error) {
      throw new SignedUploadError('malformed', 'The upload URL has a malformed percent-encoding in its path.', { cause: error });
    }
    return { key: validateKey(key), query };
  }

  /**
   * Check a request against its URL's signature and the headers it sends, before reading the
   * body. Returns what the URL allows.
   * @throws SignedUploadError
   */
  verify(request: Pick<SignedUploadRequest, 'url' | 'method' | 'headers'>, now = Date.now()): Grant {
    if (request.method !== undefined && request.method.toUpperCase() !== 'PUT') {
      throw new SignedUploadError('method', `Upload URLs accept PUT only; got ${request.method}.`);
    }
    const { key, query } = this.#keyOf(request.url);
    const expires = Number(query.get(P.expires));
    const size = Number(query.get(P.size));
    const contentType = query.get(P.type);
    const signature = query.get(P.signature) ?? '';
    if (!Number.isSafeInteger(expires) || !Number.isSafeInteger(size) || size < 0 || contentType === null || !/^[0-9a-f]{64}$/u.test(signature)) {
      throw new SignedUploadError('malformed', `The upload URL for "${key}" lacks its expiry, size, type or signature.`, { key });
    }
    const md5 = query.get(P.md5);
    const disposition = query.get(P.disposition);
    const grant: Grant = {
      key,
      expires,
      size,
      contentType,
      ...(md5 === null ? {} : { md5 }),
      ...(disposition === null ? {} : { contentDisposition: disposition }),
    };
    if (!timingSafeEqual(this.#mac(grant), Buffer.from(signature, 'hex'))) {
      throw new SignedUploadError('signature', `The upload URL for "${key}" has an invalid signature: it was altered, or signed by another secret.`, { key });
    }
    if (now >= expires * 1000) {
      throw new SignedUploadError('expired', `The upload URL for "${key}" expired at ${new Date(expires * 1000).toISOString()}.`, { key });
    }
    const header = (name: string): string | undefined => {
      const { headers } = request;
      // Node lower-cases incoming header names; a hand-made record may not.
      const value = headers instanceof Headers ? headers.get(name) : headers[name] ?? Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
      return value === null || value === undefined ? undefined : Array.isArray(value) ? value[0] : value;
    };
    const expect = (name: string, wanted: string | undefined): void => {
      const got = header(name);
      if (got !== wanted) {
        const want = wanted === undefined ? 'none' : JSON.stringify(wanted);
        throw new SignedUploadError('header', `The upload of "${key}" sent ${name} ${got === undefined ? 'none' : JSON.stringify(got)}; the URL was signed for ${want}.`, { key });
      }
    };
    expect('content-type', contentType);
    if (md5 !== null) expect('content-md5', md5);
    if (disposition !== null) expect('content-disposition', disposition);
    const length = header('content-length');
    if (length !== undefined && Number(length) !== size) {
      const reason = Number(length) > size ? 'too-large' : 'too-small';
      throw new SignedUploadError(reason, `The upload of "${key}" sent Content-Length ${length}; the URL was signed for ${size} bytes.`, { key });
    }
    return grant;
  }

  /**
   * Verify the request, then stream its body into `storage` at the signed key (replacing what
   * is there, as an S3 PUT does). A body of other bytes than signed is refused while it
   * streams and leaves nothing.
   * @throws SignedUploadError (nothing stored)
   */
  async receive(storage: UploadReceiver, request: SignedUploadRequest, now = Date.now()): Promise<SaveResult> {
    const source = normalizeContent(request.body);
    // A refused request's body is left unread: the route answers, and Node's server discards it.
    const grant = this.verify(request, now);
    const check = new BodyCheck(grant);
    // The refusal may come before the storage starts reading (a small body, while it opens its
    // temp file): kept in `check.refusal` and seen by the save as the stream's error.
    check.on('error', () => undefined);
    const input = toStream(source);
    input.on('error', (error) => check.destroy(error));
    input.pipe(check);
    try {
      return await storage.save(grant.key, check, {
        overwrite: true,
        contentType: grant.contentType,
        ...(grant.contentDisposition === undefined ? {} : { contentDisposition: grant.contentDisposition }),
        ...(request.signal === undefined ? {} : { signal: request.signal }),
      });
    } catch (error) {
      throw check.refusal ?? error;
    }
  }

  /** Never show the secret. */
  toJSON(): { baseUrl: string } {
    return { baseUrl: this.#baseUrl };
  }
}

function pathOf(url: string): string | undefined {
  if (url.startsWith('/')) return url;
  try {
    return new URL(url).pathname;
  } catch {
    return undefined;
  }
}

/** Counts and hashes the body on its way to the storage; refuses more, fewer or other bytes. */
class BodyCheck extends Transform {
  refusal: SignedUploadError | undefined;
  readonly #grant: Grant;
  readonly #md5 = createHash('md5');
  #size = 0;

  constructor(grant: Grant) {
    super();
    this.#grant = grant;
  }

  #refuse(refusal: SignedUploadError, callback: TransformCallback): void {
    this.refusal = refusal;
    callback(refusal);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#size += chunk.length;
    if (this.#size > this.#grant.size) {
      this.#refuse(new SignedUploadError('too-large', `The upload of "${this.#grant.key}" sent more than the ${this.#grant.size} bytes signed; nothing was stored.`, { key: this.#grant.key }), callback);
      return;
    }
    this.#md5.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const { key, size, md5 } = this.#grant;
    if (this.#size < size) {
      this.#refuse(new SignedUploadError('too-small', `The upload of "${key}" ended after ${this.#size} of the ${size} bytes signed; nothing was stored.`, { key }), callback);
      return;
    }
    if (md5 !== undefined && this.#md5.digest('base64') !== md5) {
      this.#refuse(new SignedUploadError('digest', `The bytes sent for "${key}" do not match the signed Content-MD5; nothing was stored.`, { key }), callback);
      return;
    }
    callback();
  }
}
