import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { discard, normalizeContent, resolveContentType, throwIfAborted } from '../../content.js';
import { ObjectNotFoundError } from '../../errors.js';
import { encodeKeyForUrl, validateKey, validatePrefix } from '../../keys.js';
import type {
  CopyOptions,
  DeleteManyOptions,
  DirectMultipartUploads,
  ListEntry,
  ListOptions,
  ObjectStat,
  OpenOptions,
  PendingWrite,
  PendingWriteQuery,
  PresignUploadOptions,
  PresignedPost,
  PresignedUpload,
  SaveOptions,
  SaveResult,
  Storage,
  StorageContent,
  StorageUrl,
  UrlOptions,
} from '../../types.js';
import { S3BatchDelete } from './delete-many.js';
import { S3DirectUploads } from './direct-uploads.js';
import { PostPolicySigner } from './presigned-post.js';
import { toStorageError } from './errors.js';
import { DEFAULT_CLEANUP_TIMEOUT, DEFAULT_PART_SIZE, type S3StorageOptions } from './options.js';
import { checkOptions, createClient } from './config.js';
import { DEFAULT_MEMORY_BUDGET, MemoryBudget } from './memory-budget.js';
import { listPendingWrites, removePendingWrite, type BucketPlace } from './pending-writes.js';
import { ShareUrls, toObjectStat } from './share-urls.js';
import { CLAIM_METADATA, S3Writer, type ConditionalWrites, type WriteParams } from './write-protocol.js';

/**
 * Objects in an S3-compatible bucket: AWS S3, MinIO, Ceph RGW, OpenStack Swift, Cloudflare R2,
 * DigitalOcean Spaces, Backblaze B2.
 *
 * Bodies up to `partSize` go as one PutObject with `If-None-Match: *`; larger streams as a
 * multipart upload into a name first claimed with a conditional empty object (see
 * `write-protocol.ts`). While such a stream is in flight its key holds that claim: `stat`,
 * `open` and `exists` treat it as missing, `list` shows it with size 0. A server without
 * conditional writes (OpenStack Swift) is detected on the first save and gets HEAD-then-write.
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
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #fileOverwrite: boolean;
  readonly #writeDefaults: WriteParams;
  readonly #writer: S3Writer;
  readonly #budget: MemoryBudget;
  readonly #urls: ShareUrls;
  readonly #direct: S3DirectUploads;
  #posts: PostPolicySigner | undefined;

  constructor(options: S3StorageOptions) {
    checkOptions(options);
    this.#ownsClient = !('client' in options);
    this.#client = 'client' in options ? options.client : createClient(options, options.endpoint);
    this.#signingClient = options.publicEndpoint === undefined ? undefined : createClient(options, options.publicEndpoint);
    this.#bucket = options.bucket;
    this.#urls = new ShareUrls(this.#signingClient ?? this.#client, options);
    this.#prefix = options.location === undefined || options.location === '' ? '' : `${options.location}/`;
    this.#fileOverwrite = options.fileOverwrite ?? false;
    this.#writeDefaults = {
      ...options.objectParameters,
      ...(options.defaultAcl === undefined ? {} : { ACL: options.defaultAcl }),
    };
    this.#budget = options.memoryBudget instanceof MemoryBudget ? options.memoryBudget : new MemoryBudget(options.memoryBudget ?? DEFAULT_MEMORY_BUDGET);
    this.#direct = new S3DirectUploads({
      client: this.#client,
      signingClient: this.#signingClient ?? this.#client,
      bucket: this.#bucket,
      prefix: this.#prefix,
      writeDefaults: this.#writeDefaults,
    });
    this.#writer = new S3Writer({
      client: this.#client,
      bucket: this.#bucket,
      prefix: this.#prefix,
      partSize: options.partSize ?? DEFAULT_PART_SIZE,
      queueSize: options.queueSize ?? 4,
      budget: this.#budget,
      noOverwrite: options.noOverwrite ?? 'conditional',
      cleanupTimeoutMs: options.cleanupTimeout ?? DEFAULT_CLEANUP_TIMEOUT,
    });
  }

  /** The S3 client in use (shared: do not destroy it while the storage is in use). */
  get client(): S3Client {
    return this.#client;
  }

  /** The bucket name. */
  get bucket(): string {
    return this.#bucket;
  }

  /**
   * Whether the server honours `If-None-Match: *` on PutObject, as far as this storage has
   * seen: `'unknown'` before the first save without overwrite, then `'supported'` (atomic
   * no-overwrite) or `'unsupported'` (HEAD-then-write: two writers racing for one name can both
   * win; the UploadService still keeps its own uploads apart).
   */
  get conditionalWrites(): ConditionalWrites {
    return this.#writer.conditionalWrites;
  }

  /** The memory budget of this storage's streamed saves (shared when one was given). */
  get memoryBudget(): MemoryBudget {
    return this.#budget;
  }

  /** Wait for the clean-ups that aborted saves left running in the background. */
  drain(): Promise<void> {
    return this.#writer.drain();
  }

  #full(key: string): string {
    return this.#prefix + validateKey(key);
  }

  #error(error: unknown, action: string, key?: string, extra: { write?: boolean; signal?: AbortSignal | undefined } = {}) {
    return toStorageError(error, { key, bucket: this.#bucket, action, ...extra });
  }

  get #place(): BucketPlace {
    return { client: this.#client, bucket: this.#bucket, prefix: this.#prefix };
  }

  async save(name: string, content: StorageContent, options: SaveOptions = {}): Promise<SaveResult> {
    const source = normalizeContent(content);
    try {
      this.#full(name);
      throwIfAborted(options.signal, name);
      const contentType = resolveContentType(name, options.contentType);
      const result = await this.#writer.write({
        name,
        source,
        params: {
          ...this.#writeDefaults,
          ContentType: contentType,
          ...(options.contentDisposition === undefined ? {} : { ContentDisposition: options.contentDisposition }),
          ...(options.cacheControl === undefined ? {} : { CacheControl: options.cacheControl }),
          ...(options.metadata === undefined ? {} : { Metadata: { ...options.metadata } }),
        },
        overwrite: options.overwrite ?? this.#fileOverwrite,
        signal: options.signal,
        reserveKey: options.reserveKey,
        onProgress: options.onProgress,
      });
      return { ...result, contentType };
    } catch (error) {
      discard(source);
      throw this.#error(error, 'write', name, { write: true, signal: options.signal });
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
    return toObjectStat(key, output);
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

  /** Created on first use; remembers whether the server has DeleteObjects (see delete-many.ts). */
  #batchDelete: S3BatchDelete | undefined;

  /** DeleteObjects of up to 1,000 keys each, a few at a time (see delete-many.ts). */
  async deleteMany(keys: Iterable<string>, options: DeleteManyOptions = {}): Promise<void> {
    this.#batchDelete ??= new S3BatchDelete(this.#place);
    await this.#batchDelete.deleteMany(keys, options.signal);
  }

  async *list(prefix = '', options: ListOptions = {}): AsyncIterable<ListEntry> {
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
            ...(token !== undefined || options.startAfter === undefined ? {} : { StartAfter: this.#prefix + options.startAfter }),
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
    let claim;
    try {
      claim = await this.#writer.claim(to, options.overwrite ?? this.#fileOverwrite);
    } catch (error) {
      throw this.#error(error, `copy to "${to}" from`, from, { write: true });
    }
    const { key } = claim;
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
      await claim.release();
      throw this.#error(error, `copy to "${to}" from`, from, { write: true });
    }
  }

  async move(from: string, to: string, options: CopyOptions = {}): Promise<{ key: string }> {
    const result = await this.copy(from, to, options);
    if (result.key !== from) await this.delete(from);
    return result;
  }

  /**
   * A presigned PutObject of exactly `options.size` bytes (up to 5 GiB) of exactly
   * `options.contentType` at `key`, signed by the public endpoint's client when there is one.
   * `Content-Type`, `Content-Length` and, when given, `Content-MD5` and `Content-Disposition`
   * are signed headers: the server refuses a request that sends other values (and, with
   * `Content-MD5`, other bytes). See {@link Storage.presignUpload}.
   */
  async presignUpload(key: string, options: PresignUploadOptions): Promise<PresignedUpload> {
    const full = this.#full(key);
    try {
      return await this.#direct.presignPut(full, options);
    } catch (error) {
      throw this.#error(error, 'presign an upload to', key);
    }
  }

  /**
   * A presigned POST form (browser-based upload from a plain HTML form) for exactly
   * `options.size` bytes of exactly `options.contentType` at `key`: the policy pins the key,
   * the type, the size (`content-length-range`), the storage's ACL and object parameters, and
   * ends at the expiry. OpenStack Swift's S3 API answers every such POST with 412; use
   * {@link S3Storage.presignUpload} there. See {@link Storage.presignPost}.
   */
  async presignPost(key: string, options: Omit<PresignUploadOptions, 'md5'>): Promise<PresignedPost> {
    const full = this.#full(key);
    try {
      this.#posts ??= new PostPolicySigner(this.#signingClient ?? this.#client, this.#bucket, this.#writeDefaults);
      return await this.#posts.presign(full, options);
    } catch (error) {
      throw this.#error(error, 'presign a POST upload to', key);
    }
  }

  /**
   * Multipart uploads a client drives: create, presign each part (its exact size is signed),
   * list the parts that arrived, complete, abort. Parts are 5 MiB to 5 GiB, except the last.
   */
  readonly multipartUploads: DirectMultipartUploads = {
    create: async (key, options) => this.#directStep('start a multipart upload of', key, (full) => this.#direct.create(full, options)),
    presignPart: async (key, uploadId, part) =>
      this.#directStep('presign a part of', key, (full) => this.#direct.presignPart(full, uploadId, part)),
    listParts: async (key, uploadId) => this.#directStep('list the parts of', key, (full) => this.#direct.listParts(full, uploadId)),
    complete: async (key, uploadId, parts) =>
      this.#directStep('complete the multipart upload of', key, (full) => this.#direct.complete(full, uploadId, parts), true),
    abort: async (key, uploadId) => this.#directStep('abort the multipart upload of', key, (full) => this.#direct.abort(full, uploadId)),
  };

  async #directStep<T>(action: string, key: string, step: (full: string) => Promise<T>, write = false): Promise<T> {
    const full = this.#full(key);
    try {
      return await step(full);
    } catch (error) {
      throw this.#error(error, action, key, { write });
    }
  }

  async url(key: string, options: UrlOptions = {}): Promise<string> {
    return (await this.signedUrl(key, options)).url;
  }

  async signedUrl(key: string, options: UrlOptions = {}): Promise<StorageUrl> {
    const full = this.#full(key);
    try {
      return await this.#urls.signedUrl(full, key, options);
    } catch (error) {
      throw this.#error(error, 'sign a URL for', key);
    }
  }

  listPendingWrites(query: PendingWriteQuery = {}): AsyncIterable<PendingWrite> {
    if (query.prefix !== undefined) validatePrefix(query.prefix);
    return listPendingWrites(this.#place, query);
  }

  async removePendingWrite(write: PendingWrite): Promise<void> {
    try {
      await removePendingWrite(this.#place, write);
    } catch (error) {
      throw this.#error(error, `remove the pending ${write.kind} of`, write.key);
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
