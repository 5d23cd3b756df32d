import { CreateMultipartUploadCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PART, s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { describeS3, rawClient } from '../helpers/s3-env.js';
import { fetchUpload } from '../helpers/upload-route.js';
import { storageContract } from './storage-contract.js';

describeS3('S3Storage', (env) => {
  const client = rawClient(env);
  afterAll(() => client.destroy());
  // What this server guarantees: learnt from it, as S3Storage learns it on its first save.
  let conditional = 'unknown';
  beforeAll(async () => {
    const probe = s3StorageFor(env, { location: `probe-${randomUUID()}` });
    await probe.save('probe.txt', 'x');
    conditional = probe.conditionalWrites;
    await s3Cleanup(client, env.bucket, 'probe-');
    probe.destroy();
  });

  storageContract(
    'S3Storage',
    async () => {
      const location = `contract-${randomUUID()}`;
      const storage = s3StorageFor(env, { location });
      const overwriting = s3StorageFor(env, { location, fileOverwrite: true });
      return {
        storage,
        overwriting,
        leftovers: () => s3Leftovers(client, env.bucket, `${location}/`),
        cleanup: async () => {
          await Promise.all([storage.drain(), overwriting.drain()]);
          await s3Cleanup(client, env.bucket, `${location}/`);
          storage.destroy();
          overwriting.destroy();
        },
        settle: async () => {
          await Promise.all([storage.drain(), overwriting.drain()]);
        },
        sendUpload: fetchUpload,
        secrets: [env.secretAccessKey],
        // A process killed mid-stream leaves its name claim and its multipart upload.
        strandWrite: async (key) => {
          const Key = `${location}/${key}`;
          await client.send(new PutObjectCommand({ Bucket: env.bucket, Key, Body: new Uint8Array(0), Metadata: { 'doorito-claim': randomUUID() } }));
          await client.send(new CreateMultipartUploadCommand({ Bucket: env.bucket, Key }));
        },
      };
    },
    // Larger than one 5 MiB part, so these streams take the multipart path.
    { keepsMetadata: true, largeStreamBytes: PART + 1024 * 1024, leavesPendingWrites: true, atomicNoOverwrite: () => conditional === 'supported' },
  );

  it(`learns whether the server honours If-None-Match: * (${env.provider === 'swift' ? 'Swift does not' : 'it does'})`, () => {
    // Swift's s3api answers conditional PutObject with 501 NotImplemented; Ceph RGW, MinIO and AWS honour it.
    expect(conditional).toBe(env.provider === 'swift' ? 'unsupported' : 'supported');
  });
});
