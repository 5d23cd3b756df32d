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

/** The `AWS_*` variables of `createStorageFromEnv()` for an S3 server and bucket (the backend is chosen by the caller). */
export function s3Variables(s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string }, bucket: string): Record<string, string> {
  return {
    AWS_STORAGE_BUCKET_NAME: bucket,
    AWS_S3_ENDPOINT_URL: s3.endpoint,
    AWS_S3_REGION_NAME: s3.region,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}
