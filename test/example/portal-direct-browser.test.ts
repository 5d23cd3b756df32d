/**
 * Direct uploads from the portal's page in headless Chromium: the portal stores on S3 (Ceph RGW
 * in CI), the bucket's CORS allows the portal's origin, and the browser PUTs the bytes to the
 * S3 port itself, cross-origin: a small file in one presigned PUT, a 21 MiB one in presigned
 * parts. Both reach `stored`; the demo webhook's fetch of the event's URL gives the same
 * sha256; each progress bar follows the browser's own upload to 100 %.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { portalOnOwnBucket } from '../helpers/browser.js';
import { describeOneS3, s3Servers, type S3TestEnv } from '../helpers/s3-env.js';
const OUT = fileURLToPath(new URL('../../test-results/', import.meta.url));
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');


describeOneS3('portal page, direct uploads to S3, in headless Chromium [chromium]', (s3) => {
  // A bucket of its own: its CORS rule names this portal's origin only.
  const fixture = portalOnOwnBucket(s3, { prefix: 'direct-browser', env: { FILE_UPLOAD_MAX_SIZE: String(64 * MiB), FILE_UPLOAD_MULTIPART_THRESHOLD: '16MiB' }, cors: true });
  beforeAll(async () => {
    await mkdir(OUT, { recursive: true });
  });

  it('a small file by presigned PUT and a 21 MiB file by multipart, cross-origin to the S3 port: both stored, sha256 confirmed by the webhook, progress to 100', async () => {
    const context = await fixture.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    const s3Requests: string[] = [];
    page.on('request', (request) => {
      if (request.url().startsWith(`${s3.endpoint}/`)) s3Requests.push(`${request.method()} ${new URL(request.url()).pathname}${new URL(request.url()).searchParams.has('partNumber') ? ' part' : ''}`);
    });
    await page.goto(fixture.portal.url);
    await expect.poll(() => page.locator('#limit-hint').textContent()).toMatch(/^Up to 64 MiB per file/u);

    const small = randomBytes(200 * 1024 + 3);
    const large = randomBytes(21 * MiB + 11);
    await page.setInputFiles('#file-input', [
      { name: 'site photo.png', mimeType: 'image/png', buffer: small },
      { name: 'survey scan.bin', mimeType: 'application/octet-stream', buffer: large },
    ]);

    const items = page.locator('#progress-list .progress-item');
    await expect.poll(() => items.count()).toBe(2);
    await expect.poll(() => page.locator('#progress-list .progress-item[data-state="done"]').count(), { timeout: 60_000 }).toBe(2);
    for (const [name, body] of [['site photo.png', small], ['survey scan.bin', large]] as const) {
      const item = page.locator(`#progress-list .progress-item[data-name="${name}"]`);
      expect(await item.getAttribute('data-route')).toBe('direct');
      // The browser's own upload progress reached every byte.
      expect(Number(await item.getAttribute('data-sent'))).toBe(body.length);
      expect(await item.locator('progress').evaluate((bar) => (bar as unknown as { value: number }).value)).toBe(100);
      expect(await item.textContent()).toContain(`sha256 ${sha256(body).slice(0, 12)}`);
    }
    // The bytes went to the S3 port: one PUT for the small file, three part PUTs for the large.
    expect(s3Requests.filter((r) => r.startsWith('PUT') && !r.endsWith(' part'))).toHaveLength(1);
    expect(s3Requests.filter((r) => r.startsWith('PUT') && r.endsWith(' part'))).toHaveLength(3);

    // Both are stored, with the sha256 of their bytes.
    const listed = (await (await fetch(`${fixture.portal.url}/uploads`)).json()) as { items: Array<{ original_filename: string; sha256: string; status: string; size_bytes: number }> };
    expect(listed.items.map((i) => [i.original_filename, i.status, i.size_bytes, i.sha256]).sort()).toEqual(
      [
        ['site photo.png', 'stored', small.length, sha256(small)],
        ['survey scan.bin', 'stored', large.length, sha256(large)],
      ].sort(),
    );

    // The demo receiver fetched each event's URL and found the same sha256.
    await expect.poll(() => page.locator('#hooks-list [data-verified="true"]').count(), { timeout: 30_000 }).toBe(2);
    const hooks = await page.locator('#hooks-list .hook').allTextContents();
    expect(hooks.every((text) => text.includes('sha256 matches'))).toBe(true);
    await page.screenshot({ path: path.join(OUT, 'portal-direct.png'), fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  });
});

const swift = s3Servers().find((env) => env.provider === 'swift');
if (process.env.CI && swift === undefined) throw new Error('the Swift server is required in CI (scripts/swift-server.sh start)');

describe.runIf(swift !== undefined)('portal page on OpenStack Swift, whose S3 API has no bucket CORS, in headless Chromium [chromium] [swift]', () => {
  const s3 = swift as S3TestEnv;
  const fixture = portalOnOwnBucket(s3, { prefix: 'direct-fallback', cors: false });
  const { client, bucket } = fixture;

  it('the preflight to Swift is refused, so the page aborts the direct upload and sends the file through the app: stored, nothing else left', async () => {
    const context = await fixture.browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    const preflights: number[] = [];
    page.on('requestfailed', (request) => {
      if (request.url().startsWith(`${s3.endpoint}/`)) preflights.push(1);
    });
    await page.goto(fixture.portal.url);
    await expect.poll(() => page.locator('#limit-hint').textContent()).toMatch(/^Up to/u);
    const body = randomBytes(150 * 1024 + 5);
    await page.setInputFiles('#file-input', [{ name: 'no cors.png', mimeType: 'image/png', buffer: body }]);
    const item = page.locator('#progress-list .progress-item[data-name="no cors.png"]');
    await expect.poll(() => item.getAttribute('data-state'), { timeout: 30_000 }).toBe('done');
    // The browser tried the storage (and was refused), then the app took the bytes.
    expect(preflights.length).toBeGreaterThanOrEqual(1);
    expect(await item.getAttribute('data-route')).toBe('app');
    expect(await item.getAttribute('data-fallback')).toBe('direct upload unreachable');
    expect(await item.textContent()).toContain(`sha256 ${sha256(body).slice(0, 12)}`);
    // Two records: the direct upload, aborted by the page; the upload through the app, stored.
    const listed = (await (await fetch(`${fixture.portal.url}/uploads?status=stored,failed`)).json()) as { items: Array<{ original_filename: string; sha256: string; status: string; error_code: string | null }> };
    const rows = listed.items.filter((i) => i.original_filename === 'no cors.png').map((i) => `${i.status} ${i.status === 'stored' ? i.sha256 : String(i.error_code)}`);
    expect(rows.sort()).toEqual(['failed aborted', `stored ${sha256(body)}`]);
    // One object in the bucket: the stored file's; the aborted direct upload left nothing.
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect((objects.Contents ?? []).map((o) => o.Key)).toHaveLength(1);
    expect(errors).toEqual([]);
    await context.close();
  });
});
