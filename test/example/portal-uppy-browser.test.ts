/**
 * Uppy v6 (@uppy/core, @uppy/aws-s3) in headless Chromium against the portal on S3 (Ceph RGW):
 * the page is Uppy wired by the portal's own public/uppy-signer.js, bundled here with esbuild.
 * A small file goes by one presigned PUT, a 21 MiB one by multipart (the part PUTs to the S3
 * port, cross-origin; create, list, complete and abort to the portal). Both reach `stored` with
 * the sha256 of their bytes; a multipart upload removed mid-way is aborted: its record failed,
 * nothing left in the bucket.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { beforeAll, expect, it } from 'vitest';
import { portalOnOwnBucket } from '../helpers/browser.js';
import { describeOneS3 } from '../helpers/s3-env.js';
import { seededBytes } from '../fixtures/seeded-bytes.js';

const ENTRY = fileURLToPath(new URL('../fixtures/uppy-page.js', import.meta.url));
const MiB = 1024 * 1024;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface Report {
  stored: Array<{ name: string; record: { id: string; status: string; sha256: string; size_bytes: number } }>;
  errors: Array<{ name: string; message: string }>;
  progress: Record<string, number>;
  partsUploaded: Record<string, number>;
}

describeOneS3('Uppy v6 (@uppy/aws-s3) against the portal on S3, in headless Chromium [chromium]', (s3) => {
  const fixture = portalOnOwnBucket(s3, { prefix: 'uppy-browser', env: { FILE_UPLOAD_MAX_SIZE: String(64 * MiB), FILE_UPLOAD_MULTIPART_THRESHOLD: '16MiB', WEBHOOK_DEMO: 'off' }, cors: true });
  const { client, bucket } = fixture;
  let bundle: string;

  beforeAll(async () => {
    const built = await build({ entryPoints: [ENTRY], bundle: true, format: 'esm', platform: 'browser', target: 'chrome120', write: false, logLevel: 'silent' });
    bundle = built.outputFiles[0]?.text ?? '';
  });

  /** A page on the portal's origin that runs the bundle (bundled by the test, not served by the portal). */
  async function uppyPage(): Promise<{ page: Page; requests: string[]; pageErrors: string[] }> {
    const context = await fixture.browser.newContext();
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    const requests: string[] = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      const where = url.origin === new URL(s3.endpoint).origin ? 's3' : url.origin === fixture.portal.url ? 'portal' : url.origin;
      requests.push(`${where} ${request.method()} ${url.pathname.replace(/[0-9a-f-]{36}/gu, ':id')}${url.searchParams.has('partNumber') ? ' part' : ''}`);
    });
    // A document the portal itself serves (its /config JSON), so that Chromium sees the page on
    // the loopback address like the S3 server; a page fulfilled by page.route() counts as public,
    // and Chromium's local-network-access check then refuses its requests to 127.0.0.1.
    await page.goto(`${fixture.portal.url}/config`);
    await page.addScriptTag({ type: 'module', content: bundle });
    await page.waitForFunction(() => 'uppyTest' in globalThis);
    return { page, requests, pageErrors };
  }
  const reportOf = (page: Page): Promise<Report> => page.evaluate(() => (globalThis as unknown as { uppyTest: { report: Report } }).uppyTest.report);

  it('a small file by one PUT and a 21 MiB file by multipart: both stored with the sha256 of their bytes, the parts sent to S3, the rest to the portal', async () => {
    const { page, requests, pageErrors } = await uppyPage();
    const files = [
      { name: 'plan.png', type: 'image/png', size: 300 * 1024 + 7, seed: 1 },
      { name: 'survey.bin', type: 'application/octet-stream', size: 21 * MiB + 5, seed: 2 },
    ];
    await page.evaluate((list) => {
      const t = (globalThis as unknown as { uppyTest: { add: (n: string, t: string, s: number, seed: number) => string; uppy: { upload: () => Promise<unknown> } } }).uppyTest;
      for (const f of list) t.add(f.name, f.type, f.size, f.seed);
      void t.uppy.upload();
    }, files);
    await expect.poll(async () => (await reportOf(page)).stored.length + (await reportOf(page)).errors.length, { timeout: 90_000 }).toBe(2);
    const report = await reportOf(page);
    expect(report.errors).toEqual([]);
    for (const f of files) {
      const stored = report.stored.find((s) => s.name === f.name);
      expect(stored?.record).toMatchObject({ status: 'stored', size_bytes: f.size, sha256: sha256(Buffer.from(seededBytes(f.size, f.seed))) });
      expect(report.progress[f.name]).toBe(f.size);
    }
    expect(report.partsUploaded['survey.bin']).toBe(3);
    // The bytes went to S3: one PUT and three part PUTs. Everything else went to the portal.
    expect(requests.filter((r) => r.startsWith('s3 PUT') && !r.endsWith(' part'))).toHaveLength(1);
    expect(requests.filter((r) => r.startsWith('s3 PUT') && r.endsWith(' part'))).toHaveLength(3);
    expect(requests.filter((r) => r.startsWith('s3 ') && !r.startsWith('s3 PUT') && !r.startsWith('s3 OPTIONS'))).toEqual([]);
    expect(requests).toContain('portal POST /uppy/:id/initiate');
    expect(requests).toContain('portal POST /uppy/:id/complete');
    // In the bucket: the two objects, no unfinished upload.
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect((objects.Contents ?? []).map((o) => o.Size).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(files.map((f) => f.size));
    expect((await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('a multipart upload removed after its first part: Uppy aborts it through the portal, the record is failed and nothing is left', async () => {
    const before = (await client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents?.length ?? 0;
    const { page, requests } = await uppyPage();
    await page.evaluate((size) => {
      const t = (globalThis as unknown as {
        uppyTest: { add: (n: string, t: string, s: number, seed: number) => string; uppy: { upload: () => Promise<unknown>; removeFile: (id: string) => void; on: (e: string, f: (file: { id: string }) => void) => void } };
      }).uppyTest;
      const id = t.add('removed.bin', 'application/octet-stream', size, 3);
      t.uppy.on('s3-multipart:part-uploaded', (file) => {
        if (file.id === id) t.uppy.removeFile(id);
      });
      void t.uppy.upload();
    }, 25 * MiB);
    await expect.poll(() => requests.includes('portal DELETE /uppy/:id/abort'), { timeout: 60_000 }).toBe(true);
    type Listed = { items: Array<{ original_filename: string; error_code: string | null }> };
    await expect
      .poll(async () => ((await (await fetch(`${fixture.portal.url}/uploads?status=failed`)).json()) as Listed).items.filter((i) => i.original_filename === 'removed.bin').map((i) => i.error_code), {
        timeout: 30_000,
      })
      .toEqual(['aborted']);
    await expect.poll(async () => (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [], { timeout: 30_000 }).toEqual([]);
    expect((await client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents?.length ?? 0).toBe(before);
    await page.context().close();
  });

  it('a file over the limit: the portal refuses to sign it, Uppy reports the error, nothing reaches S3, the record is failed file_too_large', async () => {
    const { page, requests } = await uppyPage();
    await page.evaluate((size) => {
      const t = (globalThis as unknown as { uppyTest: { add: (n: string, t: string, s: number, seed: number) => string; uppy: { upload: () => Promise<unknown> } } }).uppyTest;
      t.add('too big.bin', 'application/octet-stream', size, 4);
      void t.uppy.upload();
    }, 64 * MiB + 1);
    await expect.poll(async () => (await reportOf(page)).errors.length, { timeout: 30_000 }).toBe(1);
    const report = await reportOf(page);
    expect(report.errors[0]?.name).toBe('too big.bin');
    expect(report.errors[0]?.message).toMatch(/limit|large/iu);
    expect(report.stored).toEqual([]);
    expect(requests.filter((r) => r.startsWith('s3 '))).toEqual([]);
    type Listed = { items: Array<{ original_filename: string; error_code: string | null }> };
    const failed = ((await (await fetch(`${fixture.portal.url}/uploads?status=failed`)).json()) as Listed).items.filter((i) => i.original_filename === 'too big.bin');
    expect(failed.map((i) => i.error_code)).toEqual(['file_too_large']);
    await page.context().close();
  });
});
