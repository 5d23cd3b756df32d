import { describe, inject } from 'vitest';
import { s3Variables, type S3TestEnv } from './s3-client.js';

export { rawClient, s3Variables, type S3TestEnv } from './s3-client.js';

declare module 'vitest' {
  export interface ProvidedContext {
    s3Servers: S3TestEnv[];
  }
}

/** Every S3 server of this run (see test/setup/s3-server.ts); empty when none is available. */
export const s3Servers = (): S3TestEnv[] => inject('s3Servers');

/** The first S3 server (Ceph RGW in CI), or null: for suites about something else than S3 itself. */
export const s3Env = (): S3TestEnv | null => s3Servers()[0] ?? null;

/** Where there is no server: never contacted, since a skipped suite runs neither hooks nor tests. */
const NO_SERVER: S3TestEnv = { endpoint: 'http://127.0.0.1:1', accessKeyId: 'none', secretAccessKey: 'none', region: 'us-east-1', bucket: 'none', provider: 'none' };

/**
 * The suite registered under `describe.skip`, so that its tests count as skipped in the
 * summary (`Tests 120 passed | 140 skipped`), not as an empty `(0 test)` file.
 */
const skipWithoutServer = (name: string, fn: (env: S3TestEnv) => void): void => {
  describe.skip(`${name} [no S3 server: skipped]`, () => fn(NO_SERVER));
};

/**
 * `describe` once per S3 server, titled `name [provider]`; skipped, test by test, when there is
 * none (CI fails earlier). Where servers differ, the suite asserts each one's own guarantee.
 */
export const describeS3 = (name: string, fn: (env: S3TestEnv) => void): void => {
  const servers = s3Servers();
  if (servers.length === 0) skipWithoutServer(name, fn);
  for (const env of servers) describe(`${name} [${env.provider}]`, () => fn(env));
};

/** Like {@link describeS3}, on the first server only (suites about the portal, the CLI, memory). */
export const describeOneS3 = (name: string, fn: (env: S3TestEnv) => void): void => {
  const env = s3Env();
  if (env === null) skipWithoutServer(name, fn);
  else describe(`${name} [${env.provider}]`, () => fn(env));
};

/** The variables `createStorageFromEnv()` reads for S3, pointing at a test server (optionally under a prefix). */
export const s3StorageVariables = (env: S3TestEnv, location?: string): Record<string, string> => ({
  STORAGE_BACKEND: 's3',
  ...s3Variables(env, env.bucket),
  ...(location === undefined ? {} : { AWS_LOCATION: location }),
});
