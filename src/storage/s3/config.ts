import { S3Client } from '@aws-sdk/client-s3';
import { StorageConfigError } from '../../errors.js';
import { validateKey } from '../../keys.js';
import {
  DEFAULT_CONNECT_TIMEOUT,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_REQUEST_TIMEOUT,
  MAX_PRESIGN_SECONDS,
  MIN_PART_SIZE,
  type S3StorageOptions,
} from './options.js';

export function createClient(options: S3StorageOptions, endpoint: string | undefined): S3Client {
  if ('client' in options) {
    const config = options.client.config;
    // A second client for presigning at the public endpoint: same identity and signing settings.
    return new S3Client({
      ...(endpoint === undefined ? {} : { endpoint }),
      region: config.region,
      credentials: config.credentials,
      forcePathStyle: config.forcePathStyle ?? false,
      requestChecksumCalculation: config.requestChecksumCalculation,
      responseChecksumValidation: config.responseChecksumValidation,
    });
  }
  const withEndpoint = endpoint !== undefined;
  return new S3Client({
    // https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/node-configuring-requesthandler.html
    // The SDK sets no timeout by default: a stalled server would hold a request forever.
    requestHandler: {
      connectionTimeout: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
      requestTimeout: options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT,
      throwOnRequestTimeout: true,
      socketTimeout: options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT,
    },
    ...options.clientConfig,
    region: options.region ?? 'us-east-1',
    ...(withEndpoint ? { endpoint } : {}),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    forcePathStyle: options.forcePathStyle ?? withEndpoint,
    ...((options.requestChecksumCalculation ?? (withEndpoint ? 'WHEN_REQUIRED' : undefined)) === undefined
      ? {}
      : { requestChecksumCalculation: options.requestChecksumCalculation ?? 'WHEN_REQUIRED' }),
    ...((options.responseChecksumValidation ?? (withEndpoint ? 'WHEN_REQUIRED' : undefined)) === undefined
      ? {}
      : { responseChecksumValidation: options.responseChecksumValidation ?? 'WHEN_REQUIRED' }),
  });
}

export function checkOptions(options: S3StorageOptions): void {
  const fail = (option: string, reason: string): never => {
    throw new StorageConfigError(`S3Storage option "${option}" ${reason}.`, { option });
  };
  if (typeof options.bucket !== 'string' || options.bucket === '') fail('bucket', 'is required (the bucket name)');
  if (options.partSize !== undefined && !(Number.isInteger(options.partSize) && options.partSize >= MIN_PART_SIZE)) {
    fail('partSize', `must be a whole number of bytes, at least ${MIN_PART_SIZE} (5 MiB, S3's minimum)`);
  }
  if (options.queueSize !== undefined && !(Number.isInteger(options.queueSize) && options.queueSize >= 1)) {
    fail('queueSize', 'must be a whole number, at least 1');
  }
  for (const option of ['connectTimeout', 'requestTimeout', 'idleTimeout', 'cleanupTimeout'] as const) {
    const value = (options as Partial<Record<typeof option, number>>)[option];
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) fail(option, 'must be a whole number of milliseconds, at least 1');
  }
  const expire = options.querystringExpire;
  if (expire !== undefined && !(Number.isInteger(expire) && expire >= 1 && expire <= MAX_PRESIGN_SECONDS)) {
    fail('querystringExpire', `must be whole seconds from 1 to ${MAX_PRESIGN_SECONDS} (SigV4's maximum, 7 days)`);
  }
  for (const option of ['endpoint', 'publicEndpoint'] as const) {
    const value = (options as Partial<Record<typeof option, string>>)[option];
    if (value !== undefined && !(URL.canParse(value) && /^https?:$/u.test(new URL(value).protocol))) {
      fail(option, 'must be an http(s) URL like "http://127.0.0.1:9000"');
    }
  }
  if (options.location !== undefined && options.location !== '') {
    try {
      validateKey(options.location);
    } catch (error) {
      throw new StorageConfigError(`S3Storage option "location" must be a key prefix like "media" (no leading or trailing "/").`, {
        option: 'location',
        cause: error,
      });
    }
  }
}

