/**
 * The portal's page in headless Chromium (Debian's `chromium`, driven by playwright-core):
 * upload two files through the real file input, watch both progress bars finish and both files
 * appear, follow a download link and compare its bytes, see the demo webhook deliveries
 * verified, see the outbox's deliveries delivered and redeliver one, delete a file.
 * Screenshots go to test-results/.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../helpers/browser.js';
import { startPortal, type Portal } from '../helpers/portal.js';

const OUT = fileURLToPath(new URL('../../test-results/', import.meta.url));
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

const available = chromiumAvailable;
if (!available) {
  console.warn(`\n!! BROWSER TESTS SKIPPED: no Chromium at ${CHROMIUM} (apt-get install -y chromium)\n`);
}

describe.runIf(available)('portal page in headless Chromium [chromium]', () => {
  let portal: Portal;
  let browser: Browser;

  beforeAll(async () => {
    portal = await startPortal();
    browser = await launchChromium();
    await mkdir(OUT, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await portal?.stop();
  });

  it('uploads two files with progress, lists them, downloads one byte-exact, shows verified deliveries, redelivers one, deletes one', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(portal.url);
    await expect(page.locator('h1').textContent()).resolves.toBe('Doorito upload portal');
    // Checks go through locators (the page's CSP forbids the eval behind string waitForFunction).
    await expect.poll(() => page.locator('#limit-hint').textContent()).toMatch(/^Up to 50 MiB per file/u);

    // Keyboard: the first Tab lands on the file input (inside the drop zone's label).
    await page.keyboard.press('Tab');
    expect(await page.locator('#file-input').evaluate((el) => el === (el as unknown as { ownerDocument: { activeElement: unknown } }).ownerDocument.activeElement)).toBe(true);

    const report = randomBytes(3 * 1024 * 1024 + 17);
    const notes = Buffer.from('Meeting notes\nline two\n');
    await page.setInputFiles('#file-input', [
      { name: 'quarterly report.bin', mimeType: 'application/octet-stream', buffer: report },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: notes },
    ]);

    // Both progress bars finish, each with its own result.
    const items = page.locator('#progress-list .progress-item');
    await expect.poll(() => items.count()).toBe(2);
    await expect.poll(() => page.locator('#progress-list .progress-item[data-state="done"]').count(), { timeout: 30_000 }).toBe(2);
    expect(await page.locator('#progress-list progress').evaluateAll((bars) => bars.map((bar) => (bar as unknown as { value: number }).value))).toEqual([100, 100]);
    expect(await items.allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining(`sha256 ${sha256(notes).slice(0, 12)}`), expect.stringContaining(`sha256 ${sha256(report).slice(0, 12)}`)]));

    // Both appear in the list.
    const rows = page.locator('#files-body tr');
    await expect.poll(() => rows.count()).toBe(2);
    const reportRow = rows.filter({ hasText: 'quarterly report.bin' });
    expect(await reportRow.locator('td').nth(3).getAttribute('title')).toBe(sha256(report));

    // Follow the download link: the bytes are the file's.
    const [download] = await Promise.all([page.waitForEvent('download'), reportRow.getByRole('link', { name: /Download/u }).click()]);
    const downloaded = await readFile((await download.path()) as string);
    expect(downloaded.length).toBe(report.length);
    expect(sha256(downloaded)).toBe(sha256(report));

    // The demo webhook got both file.stored events, with valid signatures and matching sha256.
    await expect.poll(() => page.locator('#hooks-list [data-verified="true"]').count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    expect(await page.locator('#hooks-list .hook').first().textContent()).toContain('verified: signature valid, sha256 matches');

    // The deliveries panel: one row per event and endpoint, both delivered on the first attempt.
    const deliveries = page.locator('#deliveries-body tr[data-delivery-id]');
    await expect.poll(() => page.locator('#deliveries-body tr[data-status="delivered"]').count(), { timeout: 30_000 }).toBe(2);
    expect(await deliveries.count()).toBe(2);
    const row = deliveries.first();
    expect(await row.getAttribute('data-attempts')).toBe('1');
    expect(await row.textContent()).toMatch(/file\.stored.*\/webhooks\/demo.*delivered.*HTTP 204/u);
    expect(await row.textContent()).not.toContain('?');
    const eventId = (await row.getAttribute('data-event-id')) as string;
    const deliveryId = (await row.getAttribute('data-delivery-id')) as string;
    const verified = page.locator('#hooks-list [data-verified="true"]');
    const verifiedBefore = await verified.count();
    const sameId = page.locator(`#hooks-list .hook[data-delivery="${eventId}"]`);
    expect(await sameId.count()).toBe(1);

    // Redeliver it: the receiver gets the same webhook-id once more and verifies it; the row is delivered again.
    const redeliver = row.getByRole('button', { name: /^Redeliver file\.stored/u });
    expect(await redeliver.getAttribute('aria-label')).toContain('/webhooks/demo');
    await redeliver.click();
    await expect.poll(() => page.locator('#deliveries-status').textContent()).toMatch(/^Queued again: file\.stored/u);
    await expect.poll(() => verified.count(), { timeout: 30_000 }).toBe(verifiedBefore + 1);
    expect(await sameId.count()).toBe(2);
    expect(await sameId.first().textContent()).toContain('duplicate delivery (same webhook-id)');
    const again = page.locator(`#deliveries-body tr[data-delivery-id="${deliveryId}"]`);
    await expect.poll(() => again.getAttribute('data-status'), { timeout: 30_000 }).toBe('delivered');
    expect(await again.getAttribute('data-attempts')).toBe('1');
    expect(await deliveries.count()).toBe(2);

    await page.screenshot({ path: path.join(OUT, 'portal.png'), fullPage: true });

    // Delete one: its row goes, and the API agrees.
    await rows.filter({ hasText: 'notes.txt' }).getByRole('button', { name: /Delete/u }).click();
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('quarterly report.bin');
    const listed = (await (await fetch(`${portal.url}/uploads`)).json()) as { items: Array<{ original_filename: string }> };
    expect(listed.items.map((i) => i.original_filename)).toEqual(['quarterly report.bin']);

    // Phone width: still usable (no horizontal scroll), one card per file.
    await page.setViewportSize({ width: 390, height: 844 });
    const fits = await page.locator('html').evaluate((html) => {
      const root = html as unknown as { scrollWidth: number; ownerDocument: { defaultView: { innerWidth: number } } };
      return root.scrollWidth <= root.ownerDocument.defaultView.innerWidth;
    });
    expect(fits).toBe(true);
    await page.screenshot({ path: path.join(OUT, 'portal-phone.png'), fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  });
});
