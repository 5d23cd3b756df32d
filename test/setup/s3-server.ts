/**
 * Finds the real S3 servers the integration tests run against. Every S3 suite runs once per
 * server found:
 * 1. S3_TEST_ENDPOINT (+ S3_TEST_ACCESS_KEY_ID, S3_TEST_SECRET_ACCESS_KEY, S3_TEST_REGION,
 *    S3_TEST_PROVIDER): any S3-compatible server, e.g. the Ceph RGW of `scripts/s3-server.sh`;
 *    SWIFT_S3_ENDPOINT (+ SWIFT_S3_ACCESS_KEY_ID, …): the OpenStack Swift of
 *    `scripts/swift-server.sh`. `eval "$(bash scripts/s3-server.sh env)"` sets the first,
 *    `eval "$(bash scripts/swift-server.sh env)"` the second;
 * 2. without either: a MinIO container via @testcontainers/minio when a Docker engine is reachable;
 * 3. else, as root: the Ceph RGW of scripts/s3-server.sh when its Debian packages are installed
 *    (`radosgw`), and the Swift of scripts/swift-server.sh when its are (`swift-proxy-server`),
 *    started for this run and stopped afterwards if we started them;
 * 4. none (or S3_TEST_SKIP=1 and no 1.): the S3 suites fail when CI is set, and skip with a
 *    loud warning otherwise; the summary counts their tests as skipped.
 * Each server gets its own bucket for the run, emptied and removed afterwards.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
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

const SCRIPTS = path.resolve(import.meta.dirname, '../../scripts');

interface ScriptServer {
  script: string;
  binaries: string[];
  provider: string;
  /** The names of its env lines: endpoint, access key id, secret, region. */
  vars: [string, string, string, string];
}

const CEPH: ScriptServer = {
  script: 's3-server.sh',
  binaries: ['/usr/bin/radosgw', '/usr/local/bin/radosgw'],
  provider: 'ceph-rgw',
  vars: ['S3_TEST_ENDPOINT', 'S3_TEST_ACCESS_KEY_ID', 'S3_TEST_SECRET_ACCESS_KEY', 'S3_TEST_REGION'],
};
const SWIFT: ScriptServer = {
  script: 'swift-server.sh',
  binaries: ['/usr/bin/swift-proxy-server', '/usr/local/bin/swift-proxy-server'],
  provider: 'swift',
  vars: ['SWIFT_S3_ENDPOINT', 'SWIFT_S3_ACCESS_KEY_ID', 'SWIFT_S3_SECRET_ACCESS_KEY', 'SWIFT_S3_REGION'],
};

function fromScript(server: ScriptServer): { env: S3TestEnv; stop: () => Promise<void> } | undefined {
  if (!server.binaries.some((p) => existsSync(p)) || process.getuid?.() !== 0) return undefined;
  const script = path.join(SCRIPTS, server.script);
  const running = (() => {
    try {
      execFileSync('bash', [script, 'status'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  const out = execFileSync('bash', [script, running ? 'env' : 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const vars = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gmu)].map((m) => [m[1], m[2]]));
  const [endpoint, id, secret, region] = server.vars;
  return {
    env: {
      endpoint: vars[endpoint] ?? '',
      accessKeyId: vars[id] ?? '',
      secretAccessKey: vars[secret] ?? '',
      region: vars[region] ?? 'us-east-1',
      bucket: '',
      provider: server.provider,
    },
    stop: async () => {
      if (!running) execFileSync('bash', [script, 'stop'], { stdio: 'inherit' });
    },
  };
}

/** A server named by environment variables (see the top of this file). */
function fromEnv(server: ScriptServer, provider: string | undefined): S3TestEnv | undefined {
  const [endpoint, id, secret, region] = server.vars;
  const url = process.env[endpoint];
  if (url === undefined || url === '') return undefined;
  return {
    endpoint: url,
    accessKeyId: process.env[id] ?? '',
    secretAccessKey: process.env[secret] ?? '',
    region: process.env[region] ?? 'us-east-1',
    bucket: '',
    provider: provider ?? server.provider,
  };
}

async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const upload of uploads.Uploads ?? []) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
    }
    const page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    const objects = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])];
    if (objects.length === 0 && (uploads.Uploads ?? []).length === 0) return;
    // One DeleteObject each: Swift refuses DeleteObjects without Content-MD5, which the SDK no longer sends.
    await Promise.all(
      objects.map((v) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key, ...(v.VersionId === undefined || v.VersionId === 'null' ? {} : { VersionId: v.VersionId }) })),
      ),
    );
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const found: Array<{ env: S3TestEnv; stop?: () => Promise<void> }> = [];
  for (const env of [fromEnv(CEPH, process.env.S3_TEST_PROVIDER ?? 's3 (S3_TEST_ENDPOINT)'), fromEnv(SWIFT, undefined)]) {
    if (env !== undefined) found.push({ env });
  }
  // S3_TEST_SKIP=1: run the rest without looking for (or starting) a server.
  if (found.length === 0 && process.env.S3_TEST_SKIP !== '1') {
    const docker = await fromDocker();
    if (docker !== undefined) found.push(docker);
    else for (const server of [CEPH, SWIFT]) {
      const started = fromScript(server);
      if (started !== undefined) found.push(started);
    }
  }
  if (found.length === 0) {
    const message =
      'No S3 server for the integration tests: set S3_TEST_ENDPOINT to any S3-compatible server, run a Docker ' +
      'engine (testcontainers starts MinIO), or, as root on Debian, `bash scripts/s3-server.sh start` (Ceph RGW) ' +
      'and `bash scripts/swift-server.sh start` (OpenStack Swift).';
    if (process.env.CI) throw new Error(`${message} CI is set, so this is a failure, not a skip.`);
    console.warn(`\n${'!'.repeat(100)}\n!! S3 TESTS SKIPPED. ${message}\n${'!'.repeat(100)}\n`);
    project.provide('s3Servers', []);
    return undefined;
  }
  const servers: Array<{ env: S3TestEnv; client: S3Client; stop?: () => Promise<void> }> = [];
  for (const { env, stop } of found) {
    const client = rawClient(env);
    const bucket = `doorito-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    servers.push({ env: { ...env, bucket }, client, ...(stop === undefined ? {} : { stop }) });
  }
  project.provide(
    's3Servers',
    servers.map((s) => s.env),
  );
  return async () => {
    for (const { env, client, stop } of servers) {
      try {
        await emptyBucket(client, env.bucket);
        await client.send(new DeleteBucketCommand({ Bucket: env.bucket }));
      } finally {
        client.destroy();
        await stop?.();
      }
    }
  };
}
