import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

/** The real S3 server of this test run (see test/setup/s3-server.ts). */
export interface S3TestEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** A bucket made for this run, removed afterwards. */
  bucket: string;
  provider: string;
}

/** A raw SDK client for inspecting the server behind the library's back (tests and bench). */
export function rawClient(
  env: Pick<S3TestEnv, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>,
  extra: Pick<S3ClientConfig, 'requestHandler'> = {},
): S3Client {
  return new S3Client({
    ...extra,
    endpoint: env.endpoint,
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
