import { describe, inject } from 'vitest';
import type { S3TestEnv } from './s3-client.js';

export { rawClient, type S3TestEnv } from './s3-client.js';

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3TestEnv | null;
  }
}

/** The S3 server, or null when none is available (the suites then skip, loudly; CI fails earlier). */
export const s3Env = (): S3TestEnv | null => inject('s3');

/** `describe` when an S3 server is available, `describe.skip` otherwise. */
export const describeS3 = (name: string, fn: (env: S3TestEnv) => void): void => {
  const env = s3Env();
  if (env === null) describe.skip(`${name} (no S3 server)`, () => undefined);
  else describe(`${name} [${env.provider}]`, () => fn(env));
};
