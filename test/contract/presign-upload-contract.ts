/**
 * The presignUpload() part of the Storage conformance suite: a client uploads one object itself
 * through the URL, and the storage (S3 server, or the app's route on the filesystem and in
 * memory) refuses every request the signature does not allow: another type, another size,
 * other bytes than the signed MD5, an altered signature, an expired URL. Nothing refused is
 * stored.
 */
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { isStorageConfigError, type PresignedUpload } from '../../src/index.js';
import { readAll } from '../helpers/streams.js';
import type { StorageFixture } from './storage-contract.js';

const md5 = (body: Buffer): string => createHash('md5').update(body).digest('base64');

/** The URL with one hex digit of its signature changed. */
export const tamperSignature = (url: string): string =>
  url.replace(/(Signature=[0-9a-f]*)([0-9a-f])(?=&|$)/iu, (_match, head: string, last: string) => `${head}${last === '0' ? '1' : '0'}`);

export function presignUploadContract(current: () => StorageFixture, options: { keepsMetadata: boolean }): void {
  const send = (upload: PresignedUpload, body: Buffer, headers: Record<string, string> = upload.headers, url = upload.url) =>
    current().sendUpload({ ...upload, url, headers }, body);

  const expectAbsent = async (key: string) => {
    const { storage } = current();
    expect(await storage.exists(key)).toBe(false);
  };

  it('a client PUTs the bytes through the URL; the object has the signed type and size', async () => {
    const { storage } = current();
    const body = Buffer.from('direct upload body — ünïcode\n'.repeat(50));
    const upload = await storage.presignUpload('direct/hello.txt', { contentType: 'text/plain; charset=utf-8', size: body.length });
    expect(upload.method).toBe('PUT');
    expect(upload.headers).toEqual({ 'Content-Type': 'text/plain; charset=utf-8' });
    expect(upload.expiresAt.getTime()).toBeGreaterThan(Date.now() + 3500_000);
    expect(upload.expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(await send(upload, body)).toBe(200);
    const stat = await storage.stat('direct/hello.txt');
    expect(stat.size).toBe(body.length);
    if (options.keepsMetadata) expect(stat.contentType).toBe('text/plain; charset=utf-8');
    expect((await readAll(await storage.open('direct/hello.txt'))).equals(body)).toBe(true);
  });

  it('with an MD5, the URL asks for Content-MD5 and the bytes arrive whole', async () => {
    const { storage } = current();
    const body = Buffer.from('checked by the server');
    const upload = await storage.presignUpload('direct/md5.bin', { contentType: 'application/octet-stream', size: body.length, md5: md5(body), contentDisposition: 'attachment; filename="md5.bin"' });
    expect(upload.headers).toEqual({ 'Content-Type': 'application/octet-stream', 'Content-MD5': md5(body), 'Content-Disposition': 'attachment; filename="md5.bin"' });
    expect(await send(upload, body)).toBe(200);
    expect((await readAll(await storage.open('direct/md5.bin'))).equals(body)).toBe(true);
    if (options.keepsMetadata) expect((await storage.stat('direct/md5.bin')).contentDisposition).toBe('attachment; filename="md5.bin"');
  });

  it('refuses another Content-Type than signed, and stores nothing', async () => {
    const { storage } = current();
    const body = Buffer.from('<script>alert(1)</script>');
    const upload = await storage.presignUpload('direct/type.png', { contentType: 'image/png', size: body.length });
    const status = await send(upload, body, { ...upload.headers, 'Content-Type': 'text/html' });
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    await expectAbsent('direct/type.png');
  });

  it('refuses a body larger or smaller than signed, and stores nothing', async () => {
    const { storage } = current();
    const body = Buffer.alloc(1000, 0x61);
    const upload = await storage.presignUpload('direct/size.bin', { contentType: 'application/octet-stream', size: body.length });
    for (const other of [Buffer.alloc(1001, 0x61), Buffer.alloc(999, 0x61), Buffer.alloc(64 * 1024, 0x61)]) {
      const status = await send(upload, other);
      expect(status, `a body of ${other.length} bytes`).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(500);
      await expectAbsent('direct/size.bin');
    }
  });

  it('refuses other bytes of the signed size when the MD5 is signed, and stores nothing', async () => {
    const { storage } = current();
    const body = Buffer.from('the bytes the client declared');
    const other = Buffer.from('the bytes the client sent!!!!');
    expect(other.length).toBe(body.length);
    const upload = await storage.presignUpload('direct/digest.txt', { contentType: 'text/plain', size: body.length, md5: md5(body) });
    expect(await send(upload, other)).toBe(400);
    await expectAbsent('direct/digest.txt');
  });

  it('refuses an altered signature with 403, and stores nothing', async () => {
    const { storage } = current();
    const body = Buffer.from('x');
    const upload = await storage.presignUpload('direct/tampered.txt', { contentType: 'text/plain', size: 1 });
    const altered = tamperSignature(upload.url);
    expect(altered).not.toBe(upload.url);
    expect(await send(upload, body, upload.headers, altered)).toBe(403);
    // The URL bound the key: the same signature for another key is refused too.
    expect(await send(upload, body, upload.headers, upload.url.replace('direct/tampered.txt', 'direct/other.txt'))).toBe(403);
    await expectAbsent('direct/tampered.txt');
    await expectAbsent('direct/other.txt');
  });

  it('refuses an expired URL with 403, and stores nothing', async () => {
    const { storage } = current();
    const upload = await storage.presignUpload('direct/expired.txt', { contentType: 'text/plain', size: 1, expiresIn: 1 });
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(await send(upload, Buffer.from('x'))).toBe(403);
    await expectAbsent('direct/expired.txt');
  });

  it('never puts a secret in the URL or the headers', async () => {
    const fixture = current();
    const upload = await fixture.storage.presignUpload('direct/secret.txt', { contentType: 'text/plain', size: 1, md5: md5(Buffer.from('x')) });
    const printed = JSON.stringify(upload);
    for (const secret of fixture.secrets ?? []) expect(printed).not.toContain(secret);
  });

  it('refuses bad options with a StorageConfigError naming the option', async () => {
    const { storage } = current();
    const cases: Array<[string, Parameters<typeof storage.presignUpload>[1]]> = [
      ['contentType', { contentType: 'not a type', size: 1 }],
      ['size', { contentType: 'text/plain', size: -1 }],
      ['size', { contentType: 'text/plain', size: 1.5 }],
      ['md5', { contentType: 'text/plain', size: 1, md5: 'abc' }],
      ['expiresIn', { contentType: 'text/plain', size: 1, expiresIn: 604801 }],
      ['contentDisposition', { contentType: 'text/plain', size: 1, contentDisposition: 'a\r\nx-evil: 1' }],
    ];
    for (const [option, presign] of cases) {
      const error = await storage.presignUpload('direct/bad.txt', presign).catch((e: unknown) => e);
      expect(isStorageConfigError(error), `${option}: ${String(error)}`).toBe(true);
      expect((error as { option?: string }).option).toBe(option);
    }
  });
}
