import { describe, inject } from 'vitest';
import type { S3TestEnv } from './s3-client.js';

export { rawClient, type S3TestEnv } from './s3-client.js';

declare module 'vitest' {
  export interface ProvidedContext {
    s3Servers: S3TestEnv[];
  }
}

/** Every S3 server of this run (see test/setup/s3-server.ts); empty when none is available. */
export const s3Servers = (): S3TestEnv[] => inject('s3Servers');

/** The first S3 server (Ceph RGW in CI), or null: for suites about something else than S3 itself. */
export const s3Env = (): S3TestEnv | null => s3Servers()[0] ?? null;

/**
 * `describe` once per S3 server, titled `name [provider]`; `describe.skip` when there is none
 * (CI fails earlier). Where servers differ, the suite asserts each one's own guarantee.
 */
export const describeS3 = (name: string, fn: (env: S3TestEnv) => void): void => {
  const servers = s3Servers();
  if (servers.length === 0) describe.skip(`${name} (no S3 server)`, () => undefined);
  for (const env of servers) describe(`${name} [${env.provider}]`, () => fn(env));
};

/** Like {@link describeS3}, on the first server only (suites about the portal, the CLI, memory). */
export const describeOneS3 = (name: string, fn: (env: S3TestEnv) => void): void => {
  const env = s3Env();
  if (env === null) describe.skip(`${name} (no S3 server)`, () => undefined);
  else describe(`${name} [${env.provider}]`, () => fn(env));
};
