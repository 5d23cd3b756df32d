/**
 * Finds the real S3 server the integration tests run against, in this order:
 * 1. S3_TEST_ENDPOINT (+ S3_TEST_ACCESS_KEY_ID, S3_TEST_SECRET_ACCESS_KEY, S3_TEST_REGION):
 *    any S3-compatible server, e.g. the Ceph RGW that `scripts/s3-server.sh start` runs;
 * 2. a MinIO container via @testcontainers/minio when a Docker engine is reachable;
 * 3. the Ceph RGW of scripts/s3-server.sh, started for this run, when its Debian packages are
 *    installed (`radosgw` on PATH) and we run as root; stopped afterwards if we started it;
 * 4. none: the S3 suites fail when CI is set, and skip with a loud warning otherwise.
 * Each run gets its own bucket, emptied and removed afterwards.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { rawClient, type S3TestEnv } from '../helpers/s3-client.js';

async function fromDocker(): Promise<{ env: S3TestEnv; stop: () => Promise<void> } | undefined> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
  } catch {
    return undefined;
  }
  const { MinioContainer } = await import('@testcontainers/minio');
  const container = await new MinioContainer('minio/minio:RELEASE.2025-04-22T22-12-26Z').start();
  return {
    env: {
      endpoint: container.getConnectionUrl(),
      accessKeyId: container.getUsername(),
      secretAccessKey: container.getPassword(),
      region: 'us-east-1',
      bucket: '',
      provider: 'minio (testcontainers)',
    },
    stop: async () => {
      await container.stop();
    },
  };
}

const SCRIPT = path.resolve(import.meta.dirname, '../../scripts/s3-server.sh');

function fromCephScript(): { env: S3TestEnv; stop: () => Promise<void> } | undefined {
  const hasRadosgw = ['/usr/bin/radosgw', '/usr/local/bin/radosgw'].some((p) => existsSync(p));
  if (!hasRadosgw || process.getuid?.() !== 0) return undefined;
  const running = (() => {
    try {
      execFileSync('bash', [SCRIPT, 'status'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  const out = execFileSync('bash', [SCRIPT, running ? 'env' : 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const vars = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gmu)].map((m) => [m[1], m[2]]));
  return {
    env: {
      endpoint: vars['S3_TEST_ENDPOINT'] ?? '',
      accessKeyId: vars['S3_TEST_ACCESS_KEY_ID'] ?? '',
      secretAccessKey: vars['S3_TEST_SECRET_ACCESS_KEY'] ?? '',
      region: vars['S3_TEST_REGION'] ?? 'us-east-1',
      bucket: '',
      provider: 'ceph-rgw',
    },
    stop: async () => {
      if (!running) execFileSync('bash', [SCRIPT, 'stop'], { stdio: 'inherit' });
    },
  };
}

async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const upload of uploads.Uploads ?? []) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
    }
    const page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    const objects = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].map((v) => ({ Key: v.Key, VersionId: v.VersionId }));
    if (objects.length === 0 && (uploads.Uploads ?? []).length === 0) return;
    if (objects.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  let env: S3TestEnv | undefined;
  let stop: (() => Promise<void>) | undefined;
  if (process.env.S3_TEST_ENDPOINT) {
    env = {
      endpoint: process.env.S3_TEST_ENDPOINT,
      accessKeyId: process.env.S3_TEST_ACCESS_KEY_ID ?? '',
      secretAccessKey: process.env.S3_TEST_SECRET_ACCESS_KEY ?? '',
      region: process.env.S3_TEST_REGION ?? 'us-east-1',
      bucket: '',
      provider: process.env.S3_TEST_PROVIDER ?? 's3 (S3_TEST_ENDPOINT)',
    };
  } else {
    const found = (await fromDocker()) ?? fromCephScript();
    env = found?.env;
    stop = found?.stop;
  }
  if (env === undefined) {
    const message =
      'No S3 server for the integration tests: set S3_TEST_ENDPOINT to any S3-compatible server, run a Docker ' +
      'engine (testcontainers starts MinIO), or, as root on Debian, `bash scripts/s3-server.sh start` (Ceph RGW).';
    if (process.env.CI) throw new Error(`${message} CI is set, so this is a failure, not a skip.`);
    console.warn(`\n${'!'.repeat(100)}\n!! S3 TESTS SKIPPED. ${message}\n${'!'.repeat(100)}\n`);
    project.provide('s3', null);
    return undefined;
  }
  const client = rawClient(env);
  const bucket = `doorito-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  env = { ...env, bucket };
  project.provide('s3', env);
  return async () => {
    try {
      await emptyBucket(client, bucket);
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    } finally {
      client.destroy();
      await stop?.();
    }
  };
}
