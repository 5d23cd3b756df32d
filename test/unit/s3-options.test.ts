/** S3Storage refuses bad options up front, naming the option; no server needed. */
import { describe, expect, it } from 'vitest';
import { StorageConfigError, StorageWriteError } from '../../src/index.js';
import { S3Storage, toStorageError, type S3StorageClientOptions } from '../../src/storage/s3/index.js';

const base: S3StorageClientOptions = {
  bucket: 'b',
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'super-secret-value' },
};

describe('S3Storage options', () => {
  it.each<[string, Partial<S3StorageClientOptions>]>([
    ['bucket', { bucket: '' }],
    ['partSize', { partSize: 1024 * 1024 }],
    ['partSize', { partSize: 6_000_000.5 }],
    ['queueSize', { queueSize: 0 }],
    ['querystringExpire', { querystringExpire: 604801 }],
    ['querystringExpire', { querystringExpire: 0 }],
    ['endpoint', { endpoint: 'not a url' }],
    ['publicEndpoint', { publicEndpoint: 'localhost:9000/x y' }],
    ['location', { location: '/media/' }],
    ['location', { location: '../up' }],
    ['connectTimeout', { connectTimeout: 0 }],
    ['requestTimeout', { requestTimeout: 1.5 }],
    ['idleTimeout', { idleTimeout: -1 }],
    ['cleanupTimeout', { cleanupTimeout: 0 }],
  ])('refuses a bad %s', (option, bad) => {
    let error: unknown;
    try {
      new S3Storage({ ...base, ...bad });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(StorageConfigError);
    expect(error).toMatchObject({ code: 'E_CONFIG', option });
    expect((error as Error).message).toContain(`"${option}"`);
    expect((error as Error).message).not.toContain('super-secret-value');
  });

  it('gives the client it creates connect, request and idle timeouts (the SDK sets none)', async () => {
    const defaults = new S3Storage(base);
    const custom = new S3Storage({ ...base, connectTimeout: 1234, requestTimeout: 5678, idleTimeout: 910 });
    const handlerConfig = async (storage: S3Storage) => {
      const handler = storage.client.config.requestHandler as { configProvider?: Promise<Record<string, unknown>> };
      return handler.configProvider === undefined ? {} : await handler.configProvider;
    };
    expect(await handlerConfig(defaults)).toMatchObject({ connectionTimeout: 5000, requestTimeout: 120_000, socketTimeout: 30_000, throwOnRequestTimeout: true });
    expect(await handlerConfig(custom)).toMatchObject({ connectionTimeout: 1234, requestTimeout: 5678, socketTimeout: 910 });
    defaults.destroy();
    custom.destroy();
  });

  it('accepts the documented limits', () => {
    expect(() => new S3Storage({ ...base, partSize: 5 * 1024 * 1024, querystringExpire: 604800, location: 'media/private' })).not.toThrow();
  });
});

describe('toStorageError', () => {
  it('describes a non-service error by its own message, not as an S3 answer', () => {
    const cause = new Error('connect ECONNREFUSED 127.0.0.1:9');
    const error = toStorageError(cause, { key: 'a.txt', bucket: 'b', action: 'write', write: true });
    expect(error).toBeInstanceOf(StorageWriteError);
    expect(error.message).toContain('connect ECONNREFUSED 127.0.0.1:9');
    expect(error.message).not.toContain('S3 answered');
    expect(error.cause).toBe(cause);
  });

  it('names the S3 code and status of a service error', () => {
    const cause = Object.assign(new Error('We encountered an internal error'), {
      name: 'InternalError',
      $metadata: { httpStatusCode: 500 },
    });
    const error = toStorageError(cause, { key: 'a.txt', bucket: 'b', action: 'read' });
    expect(error).toMatchObject({ code: 'E_STORAGE', key: 'a.txt' });
    expect(error.message).toBe('Could not read key "a.txt" in bucket "b": S3 answered InternalError (HTTP 500).');
  });

  it.each([
    ['NoSuchKey', 404, 'E_OBJECT_NOT_FOUND'],
    ['NotFound', 404, 'E_OBJECT_NOT_FOUND'],
    ['AccessDenied', 403, 'E_PERMISSION_DENIED'],
    ['SignatureDoesNotMatch', 403, 'E_CONFIG'],
    ['InvalidAccessKeyId', 403, 'E_CONFIG'],
    ['NoSuchBucket', 404, 'E_CONFIG'],
  ])('maps %s (HTTP %i) to %s', (name, status, code) => {
    const cause = Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
    expect(toStorageError(cause, { key: 'k', bucket: 'b', action: 'read' })).toMatchObject({ code });
  });

  it('does not call a 404 during a write "object not found" (NoSuchUpload)', () => {
    const cause = Object.assign(new Error('NoSuchUpload'), { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } });
    expect(toStorageError(cause, { key: 'k', bucket: 'b', action: 'write', write: true })).toMatchObject({ code: 'E_WRITE_FAILED' });
  });
});
