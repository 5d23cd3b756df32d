/**
 * Storage configured from the environment, as the seed does with django-configurations:
 * local files in development, S3 in production, with the seed's variable names.
 */
import { FileSystemStorage } from '../storage/fs/fs-storage.js';
import { validateKey } from '../keys.js';
import type { Storage } from '../types.js';
import type { UploadServiceOptions } from '../upload/options.js';
import { DEFAULT_MAX_SIZE_BYTES } from '../upload/options.js';
import { DEFAULT_MULTIPART_THRESHOLD } from '../upload/direct-upload.js';
import { loadS3Adapter } from './load-s3.js';
import { EnvReader, type Env } from './readers.js';

export interface FileSystemStorageConfig {
  backend: 'filesystem';
  location: string;
  baseUrl: string;
  /** The HMAC key of direct-upload URLs (`MEDIA_UPLOAD_SECRET`); random per process when absent. */
  uploadSecret?: string;
}

export interface S3StorageConfig {
  backend: 's3';
  bucket: string;
  endpoint?: string;
  region: string;
  /** Absent: the SDK's default credential chain (IAM role, profile, …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  fileOverwrite: boolean;
  querystringAuth: boolean;
  querystringExpire: number;
  customDomain?: string;
  addressingStyle: 'path' | 'virtual';
  location?: string;
  publicEndpoint?: string;
  defaultAcl?: S3CannedAcl;
  /** Bytes that streamed saves may hold for multipart parts at once (`AWS_S3_MEMORY_BUDGET`). */
  memoryBudget?: number;
}

export type StorageConfig = FileSystemStorageConfig | S3StorageConfig;

const ACLS = [
  'private',
  'public-read',
  'public-read-write',
  'authenticated-read',
  'aws-exec-read',
  'bucket-owner-read',
  'bucket-owner-full-control',
] as const;

/** The canned ACLs `AWS_DEFAULT_ACL` accepts (S3's `ObjectCannedACL`). */
export type S3CannedAcl = (typeof ACLS)[number];

/**
 * Read and validate the storage settings. Every problem is collected and thrown at once as
 * one StorageConfigError listing each variable, the reason and the accepted values; secret
 * values never appear in it.
 */
export function loadStorageConfig(env: Env = process.env): StorageConfig {
  const read = new EnvReader(env);
  const explicit = read.oneOf('STORAGE_BACKEND', ['filesystem', 's3'] as const);
  const backend = explicit ?? (read.raw('NODE_ENV') === 'production' ? 's3' : 'filesystem');
  if (backend === 'filesystem') {
    const config: FileSystemStorageConfig = {
      backend,
      location: read.string('MEDIA_ROOT', './media'),
      baseUrl: read.string('MEDIA_URL', '/media/'),
    };
    const uploadSecret = read.secret('MEDIA_UPLOAD_SECRET');
    if (uploadSecret !== undefined) {
      if (Buffer.byteLength(uploadSecret) < 32) read.problem('MEDIA_UPLOAD_SECRET', 'is shorter than 32 bytes', 'at least 32 bytes, e.g. from `openssl rand -base64 32`');
      else config.uploadSecret = uploadSecret;
    }
    read.throwIfProblems('Storage configuration (filesystem)');
    return config;
  }
  const bucket = read.required('AWS_STORAGE_BUCKET_NAME', 'the bucket to store uploads in');
  const endpoint = read.url('AWS_S3_ENDPOINT_URL');
  const accessKeyId = read.secret('AWS_ACCESS_KEY_ID');
  const secretAccessKey = read.secret('AWS_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    const missing = accessKeyId === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY';
    read.problem(missing, 'is missing: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither to use the default credential chain');
  }
  const sessionToken = read.secret('AWS_SESSION_TOKEN');
  const location = read.string('AWS_LOCATION')?.replace(/^\/+|\/+$/gu, '');
  if (location !== undefined && location !== '') {
    try {
      validateKey(location);
    } catch {
      read.problem('AWS_LOCATION', 'is not a valid key prefix', 'a relative path like media or media/private, without ".." or control characters');
    }
  }
  const customDomain = read.string('AWS_S3_CUSTOM_DOMAIN');
  const publicEndpoint = read.url('AWS_S3_PUBLIC_ENDPOINT_URL');
  const defaultAcl = read.oneOf('AWS_DEFAULT_ACL', ACLS);
  const memoryBudget = read.raw('AWS_S3_MEMORY_BUDGET') === undefined ? undefined : read.bytes('AWS_S3_MEMORY_BUDGET', 0, { min: 1 });
  const config: S3StorageConfig = {
    backend,
    bucket: bucket ?? '',
    ...(endpoint === undefined ? {} : { endpoint }),
    region: read.string('AWS_S3_REGION_NAME') ?? read.string('AWS_REGION', 'us-east-1'),
    ...(accessKeyId !== undefined && secretAccessKey !== undefined
      ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) } }
      : {}),
    fileOverwrite: read.boolean('AWS_S3_FILE_OVERWRITE', false),
    querystringAuth: read.boolean('AWS_QUERYSTRING_AUTH', true),
    querystringExpire: read.integer('AWS_QUERYSTRING_EXPIRE', 3600, { min: 1, max: 604800 }),
    ...(customDomain === undefined ? {} : { customDomain }),
    addressingStyle: read.oneOf('AWS_S3_ADDRESSING_STYLE', ['path', 'virtual'] as const, endpoint === undefined ? 'virtual' : 'path'),
    ...(location === undefined || location === '' ? {} : { location }),
    ...(publicEndpoint === undefined ? {} : { publicEndpoint }),
    ...(defaultAcl === undefined ? {} : { defaultAcl }),
    ...(memoryBudget === undefined ? {} : { memoryBudget }),
  };
  read.throwIfProblems('Storage configuration (s3)');
  return config;
}

/**
 * Build the storage a config describes. Async because the S3 adapter, and the AWS SDK with it,
 * is loaded only when the config chooses S3: a filesystem setup never loads the SDK, and needs
 * none of its packages installed. Without them, S3 fails with a StorageConfigError naming them.
 */
export async function createStorage(config: StorageConfig): Promise<Storage> {
  if (config.backend === 'filesystem') {
    return new FileSystemStorage({ location: config.location, baseUrl: config.baseUrl, ...(config.uploadSecret === undefined ? {} : { uploadSecret: config.uploadSecret }) });
  }
  const { S3Storage } = await loadS3Adapter();
  return new S3Storage({
    bucket: config.bucket,
    region: config.region,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    ...(config.credentials === undefined ? {} : { credentials: config.credentials }),
    forcePathStyle: config.addressingStyle === 'path',
    fileOverwrite: config.fileOverwrite,
    querystringAuth: config.querystringAuth,
    querystringExpire: config.querystringExpire,
    ...(config.customDomain === undefined ? {} : { customDomain: config.customDomain }),
    ...(config.location === undefined ? {} : { location: config.location }),
    ...(config.publicEndpoint === undefined ? {} : { publicEndpoint: config.publicEndpoint }),
    ...(config.defaultAcl === undefined ? {} : { defaultAcl: config.defaultAcl }),
    ...(config.memoryBudget === undefined ? {} : { memoryBudget: config.memoryBudget }),
  });
}

/**
 * Local files in development, S3 in production (`NODE_ENV=production`), or what
 * `STORAGE_BACKEND` says. See docs/configuration.md for every variable.
 *
 * @example
 * const storage = await createStorageFromEnv()
 */
export async function createStorageFromEnv(env: Env = process.env): Promise<Storage> {
  return createStorage(loadStorageConfig(env));
}

const mask = (value: string): string => (value.length <= 4 ? '****' : `${value.slice(0, 4)}…(redacted)`);

/** A summary of the configuration that is safe to log: secrets redacted. */
export function describeStorageConfig(config: StorageConfig = loadStorageConfig()): Record<string, string | number | boolean> {
  if (config.backend === 'filesystem') {
    return { backend: 'filesystem', location: config.location, baseUrl: config.baseUrl, uploadSecret: config.uploadSecret === undefined ? 'random per process' : '(set, redacted)' };
  }
  const { credentials, ...rest } = config;
  return {
    ...rest,
    endpoint: config.endpoint ?? '(AWS)',
    credentials: credentials === undefined ? 'default chain (env, profile, IAM role)' : `static, access key ${mask(credentials.accessKeyId)}`,
  };
}

/** UploadService options from `FILE_UPLOAD_*` variables. */
export function loadUploadSettingsFromEnv(
  env: Env = process.env,
): Required<Pick<UploadServiceOptions, 'maxSizeBytes' | 'ttlHours' | 'expiryNotifyHours' | 'directUploadExpiresIn' | 'multipartThreshold' | 'directUploadVerify'>> & {
  allowedTypes: string[] | null;
} {
  const read = new EnvReader(env);
  const types = read.string('FILE_UPLOAD_ALLOWED_TYPES');
  const allowedTypes = types === undefined ? null : types.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '');
  for (const type of allowedTypes ?? []) {
    if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9*][a-z0-9!#$&^_.+*-]*$/u.test(type)) {
      read.problem('FILE_UPLOAD_ALLOWED_TYPES', `has an entry that is not a media type (${JSON.stringify(type)})`, 'a comma list like image/png,application/pdf');
    }
  }
  const settings = {
    maxSizeBytes: read.integer('FILE_UPLOAD_MAX_SIZE', DEFAULT_MAX_SIZE_BYTES, { min: 1 }),
    allowedTypes: allowedTypes === null || allowedTypes.length === 0 ? null : allowedTypes,
    ttlHours: read.integer('FILE_UPLOAD_TTL_HOURS', 24, { min: 1 }),
    expiryNotifyHours: read.integer('FILE_UPLOAD_EXPIRY_NOTIFY_HOURS', 1, { min: 0 }),
    directUploadExpiresIn: read.integer('FILE_UPLOAD_DIRECT_EXPIRES', 3600, { min: 1, max: 604800 }),
    multipartThreshold: read.bytes('FILE_UPLOAD_MULTIPART_THRESHOLD', DEFAULT_MULTIPART_THRESHOLD, { min: 5 * 1024 * 1024 }),
    directUploadVerify: read.oneOf('FILE_UPLOAD_DIRECT_VERIFY', ['read', 'etag'] as const, 'read'),
  };
  read.throwIfProblems('Upload settings');
  return settings;
}
