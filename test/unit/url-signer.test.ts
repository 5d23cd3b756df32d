/**
 * url() signs with the SDK's own presigner, but skips getSignedUrl's per-call middleware run.
 * These tests prove the shortcut changes nothing: at a fixed clock, the URL is byte-identical
 * to getSignedUrl's, across addressing styles, regions, prefixes, tricky keys and downloads.
 * No server is needed: signing is local.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { describe, expect, it } from 'vitest';
import { attachmentDisposition } from '../../src/index.js';
import { S3Storage } from '../../src/storage/s3/index.js';

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const clock = new Date('2026-11-27T12:34:56Z');

const KEYS = [
  'uploads/2026/11/report.pdf',
  'a file with spaces.txt',
  "sp€ci@l/!'()*+,;=&$@#?.bin",
  'отчёты/报告 2026/Ünïcödé.pdf',
  'tilde~and-under_score.txt',
  'percent%20literal.txt',
];

interface Setup {
  name: string;
  client: () => S3Client;
  bucket: string;
  location?: string;
}

const SETUPS: Setup[] = [
  {
    name: 'custom endpoint, path-style (MinIO/Ceph)',
    client: () =>
      new S3Client({ endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', credentials, forcePathStyle: true }),
    bucket: 'uploads',
  },
  {
    name: 'AWS, virtual-host style, eu-central-1',
    client: () => new S3Client({ region: 'eu-central-1', credentials }),
    bucket: 'doorito-uploads',
  },
  {
    name: 'AWS, us-east-1, with a key prefix',
    client: () => new S3Client({ region: 'us-east-1', credentials }),
    bucket: 'doorito-uploads',
    location: 'media/private',
  },
  {
    name: 'AWS, dotted bucket name (falls back to path-style over https)',
    client: () => new S3Client({ region: 'us-west-2', credentials }),
    bucket: 'uploads.example.com',
  },
  {
    name: 'temporary credentials (session token)',
    client: () =>
      new S3Client({ region: 'ap-southeast-2', credentials: { ...credentials, sessionToken: 'FwoGZXIvYXdzEXAMPLE//token+/=' } }),
    bucket: 'doorito-uploads',
  },
  {
    name: 'R2-like endpoint, region auto',
    client: () => new S3Client({ endpoint: 'https://abc123.r2.cloudflarestorage.com', region: 'auto', credentials }),
    bucket: 'files',
  },
];

describe('S3Storage.url() matches getSignedUrl byte for byte', () => {
  for (const setup of SETUPS) {
    describe(setup.name, () => {
      const client = setup.client();
      const storage = new S3Storage({
        client,
        bucket: setup.bucket,
        now: () => clock,
        ...(setup.location === undefined ? {} : { location: setup.location }),
      });
      const full = (key: string) => (setup.location === undefined ? key : `${setup.location}/${key}`);

      it.each(KEYS)('%s', async (key) => {
        const ours = await storage.url(key, { expiresIn: 900 });
        const theirs = await getSignedUrl(client, new GetObjectCommand({ Bucket: setup.bucket, Key: full(key) }), {
          expiresIn: 900,
          signingDate: clock,
        });
        expect(ours).toBe(theirs);
      });

      it('with a download filename', async () => {
        const key = KEYS[0] as string;
        const ours = await storage.url(key, { download: 'Résumé "final".pdf', expiresIn: 3600 });
        const theirs = await getSignedUrl(
          client,
          new GetObjectCommand({
            Bucket: setup.bucket,
            Key: full(key),
            ResponseContentDisposition: attachmentDisposition('Résumé "final".pdf'),
          }),
          { expiresIn: 3600, signingDate: clock },
        );
        expect(ours).toBe(theirs);
      });
    });
  }

  it('differs when the clock differs (the comparison can fail)', async () => {
    const client = new S3Client({ region: 'us-east-1', credentials });
    const storage = new S3Storage({ client, bucket: 'b', now: () => new Date(clock.getTime() + 1000) });
    const theirs = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'b', Key: 'k.txt' }), {
      expiresIn: 3600,
      signingDate: clock,
    });
    expect(await storage.url('k.txt')).not.toBe(theirs);
  });
});

describe('S3Storage URLs', () => {
  it('signedUrl() reports when a presigned URL expires', async () => {
    const storage = new S3Storage({ bucket: 'b', region: 'us-east-1', credentials, now: () => clock });
    const { url, expiresAt } = await storage.signedUrl('a.txt', { expiresIn: 600 });
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('600');
    expect(expiresAt?.toISOString()).toBe('2026-11-27T12:44:56.000Z');
  });

  it('uses querystringExpire by default and refuses lifetimes SigV4 cannot sign', async () => {
    const storage = new S3Storage({ bucket: 'b', region: 'us-east-1', credentials, querystringExpire: 120 });
    expect(new URL(await storage.url('a.txt')).searchParams.get('X-Amz-Expires')).toBe('120');
    await expect(storage.url('a.txt', { expiresIn: 604801 })).rejects.toMatchObject({ code: 'E_CONFIG', option: 'expiresIn' });
    await expect(storage.url('a.txt', { expiresIn: 0 })).rejects.toMatchObject({ code: 'E_CONFIG' });
  });

  it('gives plain URLs with querystringAuth off, path-style or virtual-host', async () => {
    const pathStyle = new S3Storage({ bucket: 'b', endpoint: 'http://127.0.0.1:9000', credentials, querystringAuth: false });
    expect(await pathStyle.url('dir/a file.txt')).toBe('http://127.0.0.1:9000/b/dir/a%20file.txt');
    const virtual = new S3Storage({ bucket: 'bucket-b', region: 'eu-west-1', credentials, querystringAuth: false, location: 'media' });
    expect(await virtual.url('a.txt')).toBe('https://bucket-b.s3.eu-west-1.amazonaws.com/media/a.txt');
  });

  it('uses the custom domain for plain URLs', async () => {
    const storage = new S3Storage({ bucket: 'b', region: 'us-east-1', credentials, customDomain: 'cdn.example.com', location: 'm' });
    expect(await storage.url('x/ä.png')).toBe('https://cdn.example.com/m/x/%C3%A4.png');
  });

  it('presigns for the public endpoint when clients reach S3 by another host', async () => {
    const storage = new S3Storage({
      bucket: 'b',
      endpoint: 'http://minio:9000',
      publicEndpoint: 'http://localhost:9000',
      credentials,
      now: () => clock,
    });
    const url = await storage.url('a.txt');
    expect(url.startsWith('http://localhost:9000/b/a.txt?')).toBe(true);
    // The same settings S3Storage defaults to with an endpoint.
    const publicClient = new S3Client({
      endpoint: 'http://localhost:9000',
      region: 'us-east-1',
      credentials,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const theirs = await getSignedUrl(publicClient, new GetObjectCommand({ Bucket: 'b', Key: 'a.txt' }), {
      expiresIn: 3600,
      signingDate: clock,
    });
    expect(url).toBe(theirs);
  });

  it('keeps an injected client\'s signing settings when presigning for a public endpoint', async () => {
    const client = new S3Client({
      endpoint: 'http://minio:9000',
      region: 'eu-west-1',
      credentials,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const storage = new S3Storage({ client, bucket: 'b', publicEndpoint: 'http://localhost:9000', now: () => clock });
    const url = new URL(await storage.url('a.txt'));
    expect(url.host).toBe('localhost:9000');
    expect(url.searchParams.get('X-Amz-Credential')).toBe('AKIDEXAMPLE/20261127/eu-west-1/s3/aws4_request');
    expect(url.searchParams.has('x-amz-checksum-mode')).toBe(false);
  });

  it('never shows the secret in inspect() or in a URL', async () => {
    const { inspect } = await import('node:util');
    const storage = new S3Storage({ bucket: 'b', region: 'us-east-1', credentials });
    expect(inspect(storage, { depth: 10 })).not.toContain(credentials.secretAccessKey);
    expect(JSON.stringify(storage)).not.toContain(credentials.secretAccessKey);
    expect(await storage.url('a.txt')).not.toContain(credentials.secretAccessKey);
  });
});
