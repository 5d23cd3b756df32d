import type { ObjectCannedACL, PutObjectCommandInput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { MemoryBudget } from './memory-budget.js';

/** Extra parameters sent with every write (server-side encryption, storage class, …). */
export type S3ObjectParameters = Partial<
  Pick<
    PutObjectCommandInput,
    | 'CacheControl'
    | 'ContentDisposition'
    | 'ContentEncoding'
    | 'ContentLanguage'
    | 'Expires'
    | 'ServerSideEncryption'
    | 'SSEKMSKeyId'
    | 'SSEKMSEncryptionContext'
    | 'BucketKeyEnabled'
    | 'StorageClass'
    | 'Tagging'
  >
>;

/** How `save()` keeps a taken name from being overwritten. */
export type S3NoOverwriteStrategy =
  /**
   * `If-None-Match: *` on PutObject, and a conditional zero-byte claim before a multipart
   * upload. Atomic. Needs a server that honours conditional PutObject (AWS S3, MinIO, Ceph RGW,
   * R2).
   */
  | 'conditional'
  /**
   * HEAD, then write. For servers that reject `If-None-Match`. Not atomic: two writers racing
   * for one name can both win, and the later one replaces the earlier.
   */
  | 'head';

interface S3StorageCommonOptions {
  /** The bucket. */
  bucket: string;
  /**
   * A key prefix inside the bucket, without leading or trailing `/`.
   * @example 'media'
   */
  location?: string;
  /**
   * Replace existing objects by default.
   * @default false
   */
  fileOverwrite?: boolean;
  /**
   * `url()` returns presigned GET URLs; false returns plain (public) URLs.
   * @default true
   */
  querystringAuth?: boolean;
  /**
   * Lifetime of presigned URLs, in seconds (1 to 604800).
   * @default 3600
   */
  querystringExpire?: number;
  /**
   * A domain (CDN, or a public bucket host) for plain URLs: `https://<customDomain>/<key>`. With
   * it, `url()` never presigns.
   * @example 'cdn.example.com'
   */
  customDomain?: string;
  /**
   * The endpoint that *clients* reach S3 at, when it differs from the one the server uses (a
   * MinIO container reached as `http://minio:9000` inside Docker and `http://localhost:9000`
   * from the browser). Presigned and plain URLs use it.
   * @example 'http://localhost:9000'
   */
  publicEndpoint?: string;
  /**
   * Canned ACL for written objects.
   * @default undefined (the bucket's default; most buckets now refuse ACLs)
   */
  defaultAcl?: ObjectCannedACL;
  /** Extra parameters for every write, e.g. `{ ServerSideEncryption: 'AES256' }`. */
  objectParameters?: S3ObjectParameters;
  /**
   * Multipart part size, in bytes (at least 5 MiB). A streamed save holds up to
   * `partSize × (queueSize + 1)` bytes of parts (40 MiB with the defaults), whatever the file
   * size, and every save of the storage together at most `memoryBudget`.
   * @default 8388608 (8 MiB)
   */
  partSize?: number;
  /**
   * Parts uploaded in parallel, per save (fewer while the memory budget is spent).
   * @default 4
   */
  queueSize?: number;
  /**
   * The most memory that streamed saves of this storage hold for parts at once, in bytes, or a
   * {@link MemoryBudget} shared with other storages. A streamed save reserves `partSize` before
   * it reads each part; with the budget spent it waits, and its source is paused. Saves of
   * Buffers, strings and Uint8Arrays use their own bytes and reserve nothing. One save larger
   * than the whole budget still runs (alone). See docs/operations.md on sizing it.
   * Environment: `AWS_S3_MEMORY_BUDGET` (e.g. `256MiB`).
   * @default 67108864 (64 MiB)
   * @example new S3Storage({ bucket: 'uploads', memoryBudget: 128 * 1024 * 1024 })
   */
  memoryBudget?: number | MemoryBudget;
  /**
   * How a taken name is protected when overwrite is off.
   * @default 'conditional'
   */
  noOverwrite?: S3NoOverwriteStrategy;
  /**
   * How long the clean-up after a failed or aborted save keeps retrying (with backoff) to
   * abort its multipart upload and delete its claim or partial object, in milliseconds. What
   * it cannot remove in that time is left for `listPendingWrites()` / `reconcile()`.
   * @default 30000
   */
  cleanupTimeout?: number;
  /**
   * Clock used to sign URLs. For tests.
   * @default () => new Date()
   */
  now?: () => Date;
}

/** Connection settings when the storage creates its own client. */
export interface S3StorageClientOptions extends S3StorageCommonOptions {
  /**
   * An S3-compatible endpoint. With it, path-style addressing and `WHEN_REQUIRED` checksums
   * are the defaults.
   * @example 'http://127.0.0.1:9000'
   */
  endpoint?: string;
  /** @default 'us-east-1' */
  region?: string;
  /** Static credentials; omit to use the SDK's default chain (env, profile, IAM role). */
  credentials?: S3ClientConfig['credentials'];
  /**
   * Path-style URLs (`host/bucket/key`).
   * @default true with an endpoint, else false
   */
  forcePathStyle?: boolean;
  /**
   * When the SDK computes request checksums. The SDK's default (`WHEN_SUPPORTED`) sends CRC32
   * trailers that several S3-compatible servers reject (aws-sdk-js-v3#6810, Ceph 16).
   * @default 'WHEN_REQUIRED' with an endpoint, else the SDK's default
   */
  requestChecksumCalculation?: S3ClientConfig['requestChecksumCalculation'];
  /** @default 'WHEN_REQUIRED' with an endpoint, else the SDK's default */
  responseChecksumValidation?: S3ClientConfig['responseChecksumValidation'];
  /**
   * Milliseconds to wait for a TCP connection to the server before a request fails (and is
   * retried by the SDK). Ignored when `clientConfig.requestHandler` is given.
   * @default 5000
   */
  connectTimeout?: number;
  /**
   * Milliseconds one request (one attempt, body included: a whole part of `partSize`) may take.
   * Ignored when `clientConfig.requestHandler` is given.
   * @default 120000
   */
  requestTimeout?: number;
  /**
   * Milliseconds a connection may stay silent in both directions (a stalled server or network)
   * before the request fails. Ignored when `clientConfig.requestHandler` is given.
   * @default 30000
   */
  idleTimeout?: number;
  /** Anything else for the `S3Client` constructor. */
  clientConfig?: Omit<S3ClientConfig, 'endpoint' | 'region' | 'credentials' | 'forcePathStyle'>;
}

/** Use a client you already have (its configuration is yours). */
export interface S3StorageInjectedClientOptions extends S3StorageCommonOptions {
  client: S3Client;
}

/** Options of `S3Storage`: a client config, or an injected `client`. */
export type S3StorageOptions = S3StorageClientOptions | S3StorageInjectedClientOptions;

export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const MAX_PRESIGN_SECONDS = 604800;
export const DEFAULT_CONNECT_TIMEOUT = 5000;
export const DEFAULT_REQUEST_TIMEOUT = 120_000;
export const DEFAULT_IDLE_TIMEOUT = 30_000;
export const DEFAULT_CLEANUP_TIMEOUT = 30_000;
