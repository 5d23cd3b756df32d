import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type HeadObjectCommandOutput,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { inspect } from 'node:util';
import {
  attachmentDisposition,
  claimAvailableName,
  discard,
  normalizeContent,
  resolveContentType,
  throwIfAborted,
  type NormalizedContent,
} from '../../content.js';
import { ObjectNotFoundError, StorageConfigError } from '../../errors.js';
import { encodeKeyForUrl, validateKey, validatePrefix } from '../../keys.js';
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
import { isS3PreconditionFailed, toStorageError } from './errors.js';
import {
  DEFAULT_PART_SIZE,
  MAX_PRESIGN_SECONDS,
  type S3NoOverwriteStrategy,
  type S3StorageOptions,
} from './options.js';
import { checkOptions, createClient } from './config.js';
import { UrlSigner } from './url-signer.js';
import { CLAIM_METADATA, uploadStream } from './upload.js';

type WriteParams = Omit<PutObjectCommandInput, 'Bucket' | 'Key' | 'Body'>;

/**
 * Objects in an S3-compatible bucket: AWS S3, MinIO, Ceph RGW, Cloudflare R2, DigitalOcean
 * Spaces, Backblaze B2.
 *
 * Known-length bodies up to `partSize` go as one PutObject with `If-None-Match: *`; streams go
 * through lib-storage's `Upload`, into a name first claimed with a conditional zero-byte PUT
 * (some servers, Ceph RGW among them, ignore `If-None-Match` on CompleteMultipartUpload). While
 * such a stream is in flight its key holds an empty claim object: `stat`, `open` and `exists`
 * treat it as missing, `list` shows it with size 0.
 *
 * @example
 * const storage = new S3Storage({
 *   bucket: 'uploads',
 *   endpoint: 'http://127.0.0.1:9000',
 *   credentials: { accessKeyId: '…', secretAccessKey: '…' },
 * })
 */
export class S3Storage implements Storage {
  readonly #client: S3Client;
  readonly #ownsClient: boolean;
  readonly #signingClient: S3Client | undefined;
  readonly #signer: UrlSigner;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #fileOverwrite: boolean;
  readonly #querystringAuth: boolean;
  readonly #querystringExpire: number;
  readonly #customDomain: string | undefined;
  readonly #writeDefaults: WriteParams;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #noOverwrite: S3NoOverwriteStrategy;
  readonly #now: () => Date;

  constructor(options: S3StorageOptions) {
    checkOptions(options);
    this.#ownsClient = !('client' in options);
    this.#client = 'client' in options ? options.client : createClient(options, options.endpoint);
    this.#signingClient = options.publicEndpoint === undefined ? undefined : createClient(options, options.publicEndpoint);
    this.#bucket = options.bucket;
    this.#signer = new UrlSigner(this.#signingClient ?? this.#client, this.#bucket);
    this.#prefix = options.location === undefined || options.location === '' ? '' : `${options.location}/`;
    this.#fileOverwrite = options.fileOverwrite ?? false;
    this.#querystringAuth = options.querystringAuth ?? true;
    this.#querystringExpire = options.querystringExpire ?? 3600;
    this.#customDomain = options.customDomain?.replace(/\/+$/u, '');
    this.#writeDefaults = {
      ...options.objectParameters,
      ...(options.defaultAcl === undefined ? {} : { ACL: options.defaultAcl }),
    };
    this.#partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.#queueSize = options.queueSize ?? 4;
    this.#noOverwrite = options.noOverwrite ?? 'conditional';
    this.#now = options.now ?? (() => new Date());
  }

  /** The S3 client in use (shared: do not destroy it while the storage is in use). */
  get client(): S3Client {
    return this.#client;
  }

  /** The bucket name. */
  get bucket(): string {
    return this.#bucket;
  }

  #full(key: string): string {
    return this.#prefix + validateKey(key);
  }

  #error(error: unknown, action: string, key?: string, extra: { write?: boolean; signal?: AbortSignal | undefined } = {}) {
    return toStorageError(error, { key, bucket: this.#bucket, action, ...extra });
  }

  async save(name: string, content: StorageContent, options: SaveOptions = {}): Promise<SaveResult> {
    const source = normalizeContent(content);
    try {
      this.#full(name);
      throwIfAborted(options.signal, name);
      const contentType = resolveContentType(name, options.contentType);
      const params: WriteParams = {
        ...this.#writeDefaults,
        ContentType: contentType,
        ...(options.contentDisposition === undefined ? {} : { ContentDisposition: options.contentDisposition }),
        ...(options.cacheControl === undefined ? {} : { CacheControl: options.cacheControl }),
        ...(options.metadata === undefined ? {} : { Metadata: { ...options.metadata } }),
      };
      const overwrite = options.overwrite ?? this.#fileOverwrite;
      const result =
        source.kind === 'bytes' && source.size <= this.#partSize
          ? await this.#putBytes(name, source.bytes, params, overwrite, options.signal)
          : await this.#putStream(name, source, params, overwrite, options);
      if (source.kind === 'bytes') options.onProgress?.(source.size);
      return { ...result, contentType };
    } catch (error) {
      discard(source);
      throw this.#error(error, 'write', name, { write: true, signal: options.signal });
    }
  }

  async #putBytes(name: string, body: Buffer, params: WriteParams, overwrite: boolean, signal: AbortSignal | undefined) {
    let etag: string | undefined;
    const put = async (key: string, conditional: boolean): Promise<void> => {
      // https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
      // If-None-Match: * makes the PUT fail with 412 when the key exists: an atomic claim.
      const output = await this.#client.send(
        new PutObjectCommand({
          ...params,
          Bucket: this.#bucket,
          Key: this.#prefix + key,
          Body: body,
          ContentLength: body.length,
          ...(conditional ? { IfNoneMatch: '*' } : {}),
        }),
        signal === undefined ? {} : { abortSignal: signal },
      );
      etag = output.ETag;
    };
    let key = name;
    if (overwrite) await put(name, false);
    else if (this.#noOverwrite === 'conditional') {
      key = await claimAvailableName(name, async (candidate) => {
        try {
          await put(candidate, true);
          return true;
        } catch (error) {
          if (isS3PreconditionFailed(error)) return false;
          throw error;
        }
      });
    } else {
      key = await claimAvailableName(name, async (candidate) => !(await this.#headRaw(candidate)));
      await put(key, false);
    }
    return { key, size: body.length, ...(etag === undefined ? {} : { etag }) };
  }

  /** Claim `key` with a conditional empty object; false when the key is taken. */
  async #claim(key: string, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#prefix + key,
          Body: new Uint8Array(0),
          ContentLength: 0,
          IfNoneMatch: '*',
          Metadata: { [CLAIM_METADATA]: '1' },
        }),
        signal === undefined ? {} : { abortSignal: signal },
      );
      return true;
    } catch (error) {
      if (isS3PreconditionFailed(error)) return false;
      throw error;
    }
  }

  async #putStream(name: string, source: NormalizedContent, params: WriteParams, overwrite: boolean, options: SaveOptions) {
    let key = name;
    let claimed = false;
    if (!overwrite && this.#noOverwrite === 'conditional') {
      key = await claimAvailableName(name, (candidate) => this.#claim(candidate, options.signal));
      claimed = true;
    } else if (!overwrite) {
      key = await claimAvailableName(name, async (candidate) => !(await this.#headRaw(candidate)));
    }
    try {
      const { etag, size } = await uploadStream({
        client: this.#client,
        params: { ...params, Bucket: this.#bucket, Key: this.#prefix + key },
        source,
        partSize: this.#partSize,
        queueSize: this.#queueSize,
        signal: options.signal,
        onProgress: options.onProgress,
      });
      // CompleteMultipartUpload answers with an empty ETag on Ceph RGW; HEAD has the real one.
      const finalEtag = etag === undefined || etag === '' ? (await this.#headRaw(key))?.ETag : etag;
      return { key, size, ...(finalEtag === undefined ? {} : { etag: finalEtag }) };
    } catch (error) {
      if (claimed) await this.#deleteRaw(key).catch(() => undefined);
      throw error;
    }
  }

  /** HEAD an object; undefined when it does not exist (claims included). */
  async #headRaw(key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      const output = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
      return output.Metadata?.[CLAIM_METADATA] === undefined ? output : undefined;
    } catch (error) {
      const translated = this.#error(error, 'stat', key);
      if (translated instanceof ObjectNotFoundError) return undefined;
      throw translated;
    }
  }

  async #deleteRaw(key: string): Promise<void> {
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
  }

  async open(key: string, options: OpenOptions = {}): Promise<Readable> {
    const full = this.#full(key);
    const range = options.range;
    try {
      const output = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: full,
          ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end ?? ''}` }),
        }),
        options.signal === undefined ? {} : { abortSignal: options.signal },
      );
      const body = output.Body as Readable | undefined;
      if (output.Metadata?.[CLAIM_METADATA] !== undefined || body === undefined) {
        body?.destroy();
        throw new ObjectNotFoundError(key);
      }
      return body;
    } catch (error) {
      throw this.#error(error, 'read', key, { signal: options.signal });
    }
  }

  async stat(key: string): Promise<ObjectStat> {
    this.#full(key);
    const output = await this.#headRaw(key);
    if (output === undefined) throw new ObjectNotFoundError(key);
    return {
      key,
      size: output.ContentLength ?? 0,
      lastModified: output.LastModified ?? new Date(0),
      contentType: output.ContentType ?? resolveContentType(key),
      ...(output.ETag === undefined ? {} : { etag: output.ETag }),
      metadata: { ...output.Metadata },
      ...(output.ContentDisposition === undefined ? {} : { contentDisposition: output.ContentDisposition }),
      ...(output.CacheControl === undefined ? {} : { cacheControl: output.CacheControl }),
    };
  }

  async exists(key: string): Promise<boolean> {
    this.#full(key);
    return (await this.#headRaw(key)) !== undefined;
  }

  async delete(key: string): Promise<void> {
    this.#full(key);
    try {
      // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html
      // S3 answers 204 for a missing key too; some gateways say 404, which we also accept.
      await this.#deleteRaw(key);
    } catch (error) {
      const translated = this.#error(error, 'delete', key);
      if (!(translated instanceof ObjectNotFoundError)) throw translated;
    }
  }

  async *list(prefix = ''): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: this.#prefix + prefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
      } catch (error) {
        throw this.#error(error, 'list', undefined);
      }
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined) continue;
        yield {
          key: item.Key.slice(this.#prefix.length),
          size: item.Size ?? 0,
          lastModified: item.LastModified ?? new Date(0),
          ...(item.ETag === undefined ? {} : { etag: item.ETag }),
        };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async copy(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const source = this.#full(from);
    this.#full(to);
    if ((await this.#headRaw(from)) === undefined) throw new ObjectNotFoundError(from);
    const overwrite = options.overwrite ?? this.#fileOverwrite;
    let key = to;
    if (!overwrite && this.#noOverwrite === 'conditional') key = await claimAvailableName(to, (c) => this.#claim(c, undefined));
    else if (!overwrite) key = await claimAvailableName(to, async (c) => !(await this.#headRaw(c)));
    try {
      // https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html
      // CopySource is "bucket/key", URL-encoded. Up to 5 GiB in one call.
      await this.#client.send(
        new CopyObjectCommand({
          ...this.#writeDefaults,
          Bucket: this.#bucket,
          Key: this.#prefix + key,
          CopySource: `${this.#bucket}/${encodeKeyForUrl(source)}`,
          MetadataDirective: 'COPY',
        }),
      );
      return { key };
    } catch (error) {
      if (!overwrite && this.#noOverwrite === 'conditional') await this.#deleteRaw(key).catch(() => undefined);
      throw this.#error(error, `copy to "${to}" from`, from, { write: true });
    }
  }

  async move(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const result = await this.copy(from, to, options);
    if (result.key !== from) await this.delete(from);
    return result;
  }

  async url(key: string, options: UrlOptions = {}): Promise<string> {
    return (await this.signedUrl(key, options)).url;
  }

  async signedUrl(key: string, options: UrlOptions = {}): Promise<StorageUrl> {
    const full = this.#full(key);
    if (this.#customDomain !== undefined) {
      const base = /^https?:\/\//u.test(this.#customDomain) ? this.#customDomain : `https://${this.#customDomain}`;
      return { url: `${base}/${encodeKeyForUrl(full)}` };
    }
    const query = options.download === undefined ? undefined : { 'response-content-disposition': attachmentDisposition(options.download) };
    try {
      if (!this.#querystringAuth) return { url: await this.#signer.plainUrl(full) };
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
    } catch (error) {
      throw this.#error(error, 'sign a URL for', key);
    }
  }

  /** Release the client this storage created (an injected client is left to its owner). */
  destroy(): void {
    if (this.#ownsClient) this.#client.destroy();
    this.#signingClient?.destroy();
  }

  [inspect.custom](): string {
    return `S3Storage { bucket: ${JSON.stringify(this.#bucket)}, location: ${JSON.stringify(this.#prefix)} }`;
  }
}
