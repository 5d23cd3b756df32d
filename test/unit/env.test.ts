/** Every environment variable: a good value, a bad value, and the default. */
import { describe, expect, it } from 'vitest';
import {
  StorageConfigError,
  createStorageFromEnv,
  describeStorageConfig,
  loadStorageConfig,
  loadUploadSettingsFromEnv,
  parseBoolean,
  parseInteger,
  parseUrl,
  type S3StorageConfig,
} from '../../src/index.js';
import { S3Storage } from '../../src/storage/s3/index.js';

const S3 = { STORAGE_BACKEND: 's3', AWS_STORAGE_BUCKET_NAME: 'uploads' };
const s3 = (env: Record<string, string>) => loadStorageConfig({ ...S3, ...env }) as S3StorageConfig;
const problems = (env: Record<string, string>, load: (e: Record<string, string>) => unknown = loadStorageConfig) => {
  try {
    load(env);
  } catch (error) {
    expect(error).toBeInstanceOf(StorageConfigError);
    return (error as StorageConfigError).problems.map((p) => p.variable);
  }
  throw new Error('expected a StorageConfigError');
};

describe('readers', () => {
  it.each(['true', 'TRUE', 'yes', 'On', '1'])('reads %s as true', (v) => expect(parseBoolean(v)).toBe(true));
  it.each(['false', 'No', 'OFF', '0'])('reads %s as false', (v) => expect(parseBoolean(v)).toBe(false));
  it.each(['', 'maybe', 'truee', '2', 'y'])('refuses %j, never silently false', (v) => expect(parseBoolean(v)).toBeUndefined());
  it('checks integers and ranges', () => {
    expect(parseInteger('42', { min: 1, max: 100 })).toBe(42);
    expect(parseInteger('0', { min: 1 })).toBeUndefined();
    expect(parseInteger('101', { max: 100 })).toBeUndefined();
    expect(parseInteger('4.5')).toBeUndefined();
    expect(parseInteger('1e3')).toBeUndefined();
    expect(parseInteger('99999999999999999999')).toBeUndefined();
  });
  it('parses http(s) URLs only', () => {
    expect(parseUrl('http://127.0.0.1:9000')?.host).toBe('127.0.0.1:9000');
    expect(parseUrl('ftp://x')).toBeUndefined();
    expect(parseUrl('localhost:9000')).toBeUndefined();
  });
});

describe('backend selection', () => {
  it('uses the filesystem by default and in development', () => {
    expect(loadStorageConfig({}).backend).toBe('filesystem');
    expect(loadStorageConfig({ NODE_ENV: 'development' }).backend).toBe('filesystem');
  });
  it('uses S3 in production', () => {
    expect(loadStorageConfig({ NODE_ENV: 'production', AWS_STORAGE_BUCKET_NAME: 'b' }).backend).toBe('s3');
  });
  it('lets STORAGE_BACKEND win either way', () => {
    expect(loadStorageConfig({ NODE_ENV: 'production', STORAGE_BACKEND: 'filesystem' }).backend).toBe('filesystem');
    expect(loadStorageConfig({ STORAGE_BACKEND: 'S3', AWS_STORAGE_BUCKET_NAME: 'b' }).backend).toBe('s3');
    expect(problems({ STORAGE_BACKEND: 'gcs' })).toEqual(['STORAGE_BACKEND']);
  });
  it('builds the matching storage', async () => {
    expect((await createStorageFromEnv({ MEDIA_ROOT: '/tmp/x' })).constructor.name).toBe('FileSystemStorage');
    expect(await createStorageFromEnv({ ...S3, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' })).toBeInstanceOf(S3Storage);
  });
});

describe('filesystem variables', () => {
  it('MEDIA_ROOT and MEDIA_URL: values and defaults', () => {
    expect(loadStorageConfig({})).toEqual({ backend: 'filesystem', location: './media', baseUrl: '/media/' });
    expect(loadStorageConfig({ MEDIA_ROOT: '/srv/media', MEDIA_URL: 'https://cdn.example/m/' })).toMatchObject({
      location: '/srv/media',
      baseUrl: 'https://cdn.example/m/',
    });
  });
});

describe('S3 variables', () => {
  it('AWS_STORAGE_BUCKET_NAME is required', () => {
    expect(s3({}).bucket).toBe('uploads');
    expect(problems({ STORAGE_BACKEND: 's3' })).toEqual(['AWS_STORAGE_BUCKET_NAME']);
  });
  it('AWS_S3_ENDPOINT_URL: a URL, none by default, path-style with it', () => {
    expect(s3({}).endpoint).toBeUndefined();
    expect(s3({}).addressingStyle).toBe('virtual');
    expect(s3({ AWS_S3_ENDPOINT_URL: 'http://minio:9000/' })).toMatchObject({ endpoint: 'http://minio:9000', addressingStyle: 'path' });
    expect(problems({ ...S3, AWS_S3_ENDPOINT_URL: 'minio:9000' })).toEqual(['AWS_S3_ENDPOINT_URL']);
  });
  it('AWS_S3_ENDPOINT_URL never echoes credentials embedded in it', () => {
    let message = '';
    try {
      loadStorageConfig({ ...S3, AWS_S3_ENDPOINT_URL: 'http://admin:hunter2@minio:9000' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('AWS_S3_ENDPOINT_URL');
    expect(message).not.toContain('hunter2');
  });
  it('AWS_S3_REGION_NAME, else AWS_REGION, else us-east-1', () => {
    expect(s3({}).region).toBe('us-east-1');
    expect(s3({ AWS_REGION: 'eu-west-1' }).region).toBe('eu-west-1');
    expect(s3({ AWS_REGION: 'eu-west-1', AWS_S3_REGION_NAME: 'auto' }).region).toBe('auto');
  });
  it('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: both or neither, never echoed', () => {
    expect(s3({}).credentials).toBeUndefined();
    expect(s3({ AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 's3cr3t-value' }).credentials).toEqual({
      accessKeyId: 'AKIA1',
      secretAccessKey: 's3cr3t-value',
    });
    expect(problems({ ...S3, AWS_ACCESS_KEY_ID: 'AKIA1' })).toEqual(['AWS_SECRET_ACCESS_KEY']);
    let message = '';
    try {
      loadStorageConfig({ ...S3, AWS_SECRET_ACCESS_KEY: 's3cr3t-value', AWS_QUERYSTRING_EXPIRE: 'x' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('AWS_ACCESS_KEY_ID');
    expect(message).not.toContain('s3cr3t-value');
  });
  it.each([
    ['AWS_S3_FILE_OVERWRITE', 'fileOverwrite', false],
    ['AWS_QUERYSTRING_AUTH', 'querystringAuth', true],
  ] as const)('%s: boolean with default %s', (variable, key, fallback) => {
    expect(s3({})[key]).toBe(fallback);
    expect(s3({ [variable]: 'yes' })[key]).toBe(true);
    expect(s3({ [variable]: 'OFF' })[key]).toBe(false);
    expect(problems({ ...S3, [variable]: 'nope' })).toEqual([variable]);
  });
  it('AWS_QUERYSTRING_EXPIRE: seconds from 1 to 604800, default 3600', () => {
    expect(s3({}).querystringExpire).toBe(3600);
    expect(s3({ AWS_QUERYSTRING_EXPIRE: '604800' }).querystringExpire).toBe(604800);
    expect(problems({ ...S3, AWS_QUERYSTRING_EXPIRE: '604801' })).toEqual(['AWS_QUERYSTRING_EXPIRE']);
    expect(problems({ ...S3, AWS_QUERYSTRING_EXPIRE: '0' })).toEqual(['AWS_QUERYSTRING_EXPIRE']);
    expect(problems({ ...S3, AWS_QUERYSTRING_EXPIRE: 'an hour' })).toEqual(['AWS_QUERYSTRING_EXPIRE']);
  });
  it('AWS_SESSION_TOKEN goes with the static keys', () => {
    expect(s3({ AWS_ACCESS_KEY_ID: 'ASIA1', AWS_SECRET_ACCESS_KEY: 's', AWS_SESSION_TOKEN: 'tok' }).credentials).toEqual({
      accessKeyId: 'ASIA1',
      secretAccessKey: 's',
      sessionToken: 'tok',
    });
  });
  it('AWS_LOCATION must be a valid key prefix', () => {
    expect(problems({ ...S3, AWS_LOCATION: 'media/../other' })).toEqual(['AWS_LOCATION']);
  });
  it('AWS_S3_CUSTOM_DOMAIN, AWS_LOCATION: optional strings', () => {
    expect(s3({}).customDomain).toBeUndefined();
    expect(s3({}).location).toBeUndefined();
    expect(s3({ AWS_S3_CUSTOM_DOMAIN: 'cdn.example.com', AWS_LOCATION: '/media/' })).toMatchObject({ customDomain: 'cdn.example.com', location: 'media' });
  });
  it('AWS_S3_ADDRESSING_STYLE: path or virtual', () => {
    expect(s3({ AWS_S3_ADDRESSING_STYLE: 'Path' }).addressingStyle).toBe('path');
    expect(s3({ AWS_S3_ENDPOINT_URL: 'http://x:1', AWS_S3_ADDRESSING_STYLE: 'virtual' }).addressingStyle).toBe('virtual');
    expect(problems({ ...S3, AWS_S3_ADDRESSING_STYLE: 'dns' })).toEqual(['AWS_S3_ADDRESSING_STYLE']);
  });
  it('AWS_S3_PUBLIC_ENDPOINT_URL: a URL', () => {
    expect(s3({}).publicEndpoint).toBeUndefined();
    expect(s3({ AWS_S3_PUBLIC_ENDPOINT_URL: 'http://localhost:9000' }).publicEndpoint).toBe('http://localhost:9000');
    expect(problems({ ...S3, AWS_S3_PUBLIC_ENDPOINT_URL: 'not a url' })).toEqual(['AWS_S3_PUBLIC_ENDPOINT_URL']);
  });
  it('AWS_DEFAULT_ACL: a canned ACL, none by default', () => {
    expect(s3({}).defaultAcl).toBeUndefined();
    expect(s3({ AWS_DEFAULT_ACL: 'public-read' }).defaultAcl).toBe('public-read');
    expect(problems({ ...S3, AWS_DEFAULT_ACL: 'everyone' })).toEqual(['AWS_DEFAULT_ACL']);
  });
  it('AWS_S3_MEMORY_BUDGET: bytes, or with a binary unit; unset keeps the storage default', () => {
    expect(s3({}).memoryBudget).toBeUndefined();
    expect(s3({ AWS_S3_MEMORY_BUDGET: '1048576' }).memoryBudget).toBe(1048576);
    expect(s3({ AWS_S3_MEMORY_BUDGET: '256MiB' }).memoryBudget).toBe(256 * 1024 * 1024);
    expect(s3({ AWS_S3_MEMORY_BUDGET: '1g' }).memoryBudget).toBe(1024 ** 3);
    expect(s3({ AWS_S3_MEMORY_BUDGET: '512 KiB' }).memoryBudget).toBe(512 * 1024);
    for (const bad of ['0', 'lots', '1.5GiB', '-5', '256TB']) expect(problems({ ...S3, AWS_S3_MEMORY_BUDGET: bad })).toEqual(['AWS_S3_MEMORY_BUDGET']);
  });
  it('reports every problem at once, with reasons and accepted values', () => {
    let error: StorageConfigError | undefined;
    try {
      loadStorageConfig({ STORAGE_BACKEND: 's3', AWS_QUERYSTRING_AUTH: 'maybe', AWS_QUERYSTRING_EXPIRE: '-1', AWS_S3_ENDPOINT_URL: 'x' });
    } catch (caught) {
      error = caught as StorageConfigError;
    }
    expect(error?.code).toBe('E_CONFIG');
    expect(error?.problems.map((p) => p.variable).sort()).toEqual(
      ['AWS_QUERYSTRING_AUTH', 'AWS_QUERYSTRING_EXPIRE', 'AWS_S3_ENDPOINT_URL', 'AWS_STORAGE_BUCKET_NAME'].sort(),
    );
    expect(error?.message).toContain('accepted: true/false, yes/no, on/off, 1/0');
    expect(error?.message).toContain('from 1 to 604800');
  });
});

describe('describeStorageConfig', () => {
  it('redacts credentials', () => {
    const summary = describeStorageConfig(s3({ AWS_ACCESS_KEY_ID: 'AKIAABCDEFGH', AWS_SECRET_ACCESS_KEY: 'very-secret-key' }));
    expect(JSON.stringify(summary)).not.toContain('very-secret-key');
    expect(JSON.stringify(summary)).not.toContain('AKIAABCDEFGH');
    expect(summary['credentials']).toBe('static, access key AKIA…(redacted)');
    expect(describeStorageConfig(s3({}))['credentials']).toMatch(/default chain/u);
  });
});

describe('loadUploadSettingsFromEnv', () => {
  it('reads MEDIA_UPLOAD_SECRET for the filesystem, refuses a short one, never describes it', () => {
    const secret = 'a-long-enough-upload-secret-0123456789';
    const config = loadStorageConfig({ STORAGE_BACKEND: 'filesystem', MEDIA_UPLOAD_SECRET: secret });
    expect(config).toMatchObject({ backend: 'filesystem', uploadSecret: secret });
    expect(JSON.stringify(describeStorageConfig(config))).not.toContain(secret);
    expect(describeStorageConfig(config)).toMatchObject({ uploadSecret: '(set, redacted)' });
    const error = (() => {
      try {
        loadStorageConfig({ STORAGE_BACKEND: 'filesystem', MEDIA_UPLOAD_SECRET: 'short-secret' });
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(error?.message).toContain('MEDIA_UPLOAD_SECRET');
    expect(error?.message).not.toContain('short-secret');
  });
  it('has the seed defaults', () => {
    expect(loadUploadSettingsFromEnv({})).toEqual({
      maxSizeBytes: 52428800,
      allowedTypes: null,
      ttlHours: 24,
      expiryNotifyHours: 1,
      directUploadExpiresIn: 3600,
      multipartThreshold: 100 * 1024 * 1024,
      directUploadVerify: 'read',
    });
  });
  it('reads good values', () => {
    expect(
      loadUploadSettingsFromEnv({
        FILE_UPLOAD_MAX_SIZE: '1048576',
        FILE_UPLOAD_ALLOWED_TYPES: 'image/png, Application/PDF,,',
        FILE_UPLOAD_TTL_HOURS: '48',
        FILE_UPLOAD_EXPIRY_NOTIFY_HOURS: '2',
        FILE_UPLOAD_DIRECT_EXPIRES: '900',
        FILE_UPLOAD_MULTIPART_THRESHOLD: '16MiB',
        FILE_UPLOAD_DIRECT_VERIFY: 'etag',
      }),
    ).toEqual({
      maxSizeBytes: 1048576,
      allowedTypes: ['image/png', 'application/pdf'],
      ttlHours: 48,
      expiryNotifyHours: 2,
      directUploadExpiresIn: 900,
      multipartThreshold: 16 * 1024 * 1024,
      directUploadVerify: 'etag',
    });
    expect(loadUploadSettingsFromEnv({ FILE_UPLOAD_ALLOWED_TYPES: ' ' }).allowedTypes).toBeNull();
  });
  it.each([
    ['FILE_UPLOAD_MAX_SIZE', '50MB'],
    ['FILE_UPLOAD_MAX_SIZE', '0'],
    ['FILE_UPLOAD_ALLOWED_TYPES', 'png'],
    ['FILE_UPLOAD_TTL_HOURS', '0'],
    ['FILE_UPLOAD_EXPIRY_NOTIFY_HOURS', '-1'],
    ['FILE_UPLOAD_DIRECT_EXPIRES', '604801'],
    ['FILE_UPLOAD_MULTIPART_THRESHOLD', '1MiB'],
    ['FILE_UPLOAD_DIRECT_VERIFY', 'trust'],
  ])('refuses %s=%s', (variable, value) => {
    expect(problems({ [variable]: value }, loadUploadSettingsFromEnv)).toEqual([variable]);
  });
});
