/**
 * The URLs an S3Storage hands out: plain ones on a custom domain or a public bucket, presigned
 * GETs otherwise (with an optional download disposition).
 */
import type { HeadObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { attachmentDisposition, resolveContentType } from '../../content.js';
import { StorageConfigError } from '../../errors.js';
import { encodeKeyForUrl } from '../../keys.js';
import type { ObjectStat, StorageUrl, UrlOptions } from '../../types.js';
import { MAX_PRESIGN_SECONDS, type S3StorageOptions } from './options.js';
import { UrlSigner } from './url-signer.js';
import { TOKEN_METADATA } from './write-protocol.js';

export class ShareUrls {
  readonly #signer: UrlSigner;
  readonly #querystringAuth: boolean;
  readonly #querystringExpire: number;
  readonly #customDomain: string | undefined;
  readonly #now: () => Date;

  constructor(client: S3Client, options: S3StorageOptions) {
    this.#signer = new UrlSigner(client, options.bucket);
    this.#querystringAuth = options.querystringAuth ?? true;
    this.#querystringExpire = options.querystringExpire ?? 3600;
    this.#customDomain = options.customDomain?.replace(/\/+$/u, '');
    this.#now = options.now ?? (() => new Date());
  }

  /** A URL for the object at `full` (the key with the storage's location); `key` names it in errors. */
  async signedUrl(full: string, key: string, options: UrlOptions): Promise<StorageUrl> {
    if (this.#customDomain !== undefined) {
      const base = /^https?:\/\//u.test(this.#customDomain) ? this.#customDomain : `https://${this.#customDomain}`;
      return { url: `${base}/${encodeKeyForUrl(full)}` };
    }
    if (!this.#querystringAuth) return { url: await this.#signer.plainUrl(full) };
    const query = options.download === undefined ? undefined : { 'response-content-disposition': attachmentDisposition(options.download) };
    const expiresIn = options.expiresIn ?? this.#querystringExpire;
    if (!(Number.isInteger(expiresIn) && expiresIn >= 1 && expiresIn <= MAX_PRESIGN_SECONDS)) {
      throw new StorageConfigError(`url() option "expiresIn" must be whole seconds from 1 to ${MAX_PRESIGN_SECONDS}; got ${expiresIn}.`, {
        option: 'expiresIn',
        key,
      });
    }
    const signingDate = this.#now();
    const url = await this.#signer.presign(full, { expiresIn, signingDate, ...(query === undefined ? {} : { query }) });
    return { url, expiresAt: new Date(signingDate.getTime() + expiresIn * 1000) };
  }
}

/** A HEAD answer as `stat()` returns it, without the storage's own metadata markers. */
export function toObjectStat(key: string, output: HeadObjectCommandOutput): ObjectStat {
  const metadata = { ...output.Metadata };
  delete metadata[TOKEN_METADATA];
  return {
    key,
    size: output.ContentLength ?? 0,
    lastModified: output.LastModified ?? new Date(0),
    contentType: output.ContentType ?? resolveContentType(key),
    ...(output.ETag === undefined ? {} : { etag: output.ETag }),
    metadata,
    ...(output.ContentDisposition === undefined ? {} : { contentDisposition: output.ContentDisposition }),
    ...(output.CacheControl === undefined ? {} : { cacheControl: output.CacheControl }),
  };
}
