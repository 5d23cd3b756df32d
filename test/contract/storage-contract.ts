/**
 * One conformance suite for every Storage. Each backend's test file calls storageContract()
 * with a fixture factory; backend-only checks live beside it in its own file.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  StorageAbortedError,
  StorageWriteError,
  isInvalidKeyError,
  type PresignedUpload,
  type Storage,
  type StorageContent,
} from '../../src/index.js';
import { presignUploadContract } from './presign-upload-contract.js';
import { HOSTILE_KEYS } from '../fixtures/hostile-keys.js';
import { bytesOf, patternStream, sha256 } from '../helpers/streams.js';

export interface StorageFixture {
  storage: Storage;
  /** A storage over the same place with `fileOverwrite: true`. */
  overwriting: Storage;
  /** Everything the backend holds for this fixture: objects, temp files, unfinished uploads. */
  leftovers(): Promise<string[]>;
  cleanup(): Promise<void>;
  /** Wait for clean-ups the storage runs in the background (S3, after an abort). */
  settle?(): Promise<void>;
  /** Leave an unfinished write for `key`, as a process killed mid-save would. */
  strandWrite?(key: string): Promise<void>;
  /**
   * Send one upload the way a client would (S3: to the server; filesystem: to the app's route
   * over HTTP; memory: to `receiveUpload()`), with exactly these headers; the HTTP status.
   */
  sendUpload(upload: PresignedUpload, body: Buffer): Promise<number>;
  /** Secrets that must never appear in a URL or a header (the S3 secret key, the upload secret). */
  secrets?: string[];
}

export interface ContractOptions {
  /** Whether stat() returns the stored contentType/metadata/cacheControl (the filesystem does not). */
  keepsMetadata: boolean;
  /** Size of a stream that takes the multipart path (S3: more than one part). */
  largeStreamBytes: number;
  /** Whether a killed save can leave a pending write (S3, filesystem; memory saves are one step). */
  leavesPendingWrites: boolean;
  /**
   * Whether concurrent saves of one name are kept apart atomically. False on S3 servers without
   * conditional writes (OpenStack Swift): there, saves racing inside the HEAD-to-PUT gap can
   * share a key (the later replaces the earlier); each object is still one save's bytes, whole.
   * Asked when the test runs (an S3 suite learns it from the server).
   * @default true
   */
  atomicNoOverwrite?: () => boolean;
}

const ALTERNATIVE = (dir: string, stem: string, ext: string): RegExp =>
  new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\/]/gu, '\\$&')}${stem}_[a-zA-Z0-9]{7}${ext.replace('.', '\\.')}$`, 'u');

async function expectNothingLeft(fixture: StorageFixture): Promise<void> {
  await fixture.settle?.();
  expect(await fixture.leftovers()).toEqual([]);
}

export function storageContract(name: string, makeFixture: () => Promise<StorageFixture>, options: ContractOptions): void {
  describe(`Storage contract: ${name}`, () => {
    let fixture: StorageFixture;
    let storage: Storage;

    beforeEach(async () => {
      fixture = await makeFixture();
      storage = fixture.storage;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    describe('save and open', () => {
      const payload = 'héllo, wörld — 你好\n'.repeat(100);
      const kinds: Array<[string, () => StorageContent]> = [
        ['string', () => payload],
        ['Buffer', () => Buffer.from(payload)],
        ['Uint8Array', () => new Uint8Array(Buffer.from(payload))],
        ['Node Readable', () => Readable.from([Buffer.from(payload.slice(0, 50)), Buffer.from(payload.slice(50))])],
        ['Web ReadableStream', () => new Blob([payload]).stream()],
        ['Blob', () => new Blob([payload])],
        [
          'AsyncIterable',
          () =>
            (async function* () {
              yield Buffer.from(payload);
            })(),
        ],
      ];
      for (const [kind, make] of kinds) {
        it(`round-trips a ${kind}`, async () => {
          const result = await storage.save('docs/note.txt', make());
          expect(result).toMatchObject({ key: 'docs/note.txt', size: Buffer.byteLength(payload), contentType: 'text/plain' });
          expect(await text(await storage.open(result.key))).toBe(payload);
        });
      }

      it('derives the content type from the extension, else application/octet-stream', async () => {
        expect((await storage.save('a/photo.png', 'x')).contentType).toBe('image/png');
        expect((await storage.save('a/blob.unknownext', 'x')).contentType).toBe('application/octet-stream');
        expect((await storage.save('a/noext', 'x')).contentType).toBe('application/octet-stream');
        expect((await storage.stat('a/photo.png')).contentType).toBe('image/png');
      });

      it('reports progress up to the full size', async () => {
        const seen: number[] = [];
        const size = 3 * 1024 * 1024 + 7;
        const result = await storage.save('p/progress.bin', patternStream(size), { onProgress: (n) => seen.push(n) });
        expect(result.size).toBe(size);
        expect(seen.at(-1)).toBe(size);
        expect([...seen].sort((a, b) => a - b)).toEqual(seen);
      });

      it('keeps Unicode keys', async () => {
        const key = 'отчёты/报告 2026/Ünïcödé résumé.pdf';
        const { key: saved } = await storage.save(key, 'unicode');
        expect(saved).toBe(key);
        expect(await text(await storage.open(key))).toBe('unicode');
        const listed = [];
        for await (const entry of storage.list('отчёты/')) listed.push(entry.key);
        expect(listed).toEqual([key]);
      });

      it('reads a byte range', async () => {
        await storage.save('r/range.txt', '0123456789');
        expect(await text(await storage.open('r/range.txt', { range: { start: 2, end: 5 } }))).toBe('2345');
        expect(await text(await storage.open('r/range.txt', { range: { start: 7 } }))).toBe('789');
      });

      if (options.keepsMetadata) {
        it('keeps content type, disposition, cache control and metadata', async () => {
          await storage.save('m/data.bin', 'x', {
            contentType: 'text/csv',
            contentDisposition: 'attachment; filename="data.csv"',
            cacheControl: 'max-age=60',
            metadata: { owner: 'alice', batch: '42' },
          });
          const stat = await storage.stat('m/data.bin');
          expect(stat).toMatchObject({
            key: 'm/data.bin',
            size: 1,
            contentType: 'text/csv',
            contentDisposition: 'attachment; filename="data.csv"',
            cacheControl: 'max-age=60',
            metadata: { owner: 'alice', batch: '42' },
          });
          // Exactly the user's metadata: the storage's own markers stay hidden.
          expect(stat.metadata).toEqual({ owner: 'alice', batch: '42' });
        });
      }
    });

    describe('no overwrite by default', () => {
      it('saves a taken name under <stem>_<7 chars><ext> and keeps the first object', async () => {
        const first = await storage.save('uploads/2026/11/report.pdf', 'first');
        const second = await storage.save('uploads/2026/11/report.pdf', 'second');
        expect(first.key).toBe('uploads/2026/11/report.pdf');
        expect(second.key).toMatch(ALTERNATIVE('uploads/2026/11/', 'report', '.pdf'));
        expect(await text(await storage.open(first.key))).toBe('first');
        expect(await text(await storage.open(second.key))).toBe('second');
      });

      it('applies the same rule to streams', async () => {
        await storage.save('s/stream.bin', patternStream(1024));
        const second = await storage.save('s/stream.bin', patternStream(2048));
        expect(second.key).toMatch(ALTERNATIVE('s/', 'stream', '.bin'));
        expect((await storage.stat('s/stream.bin')).size).toBe(1024);
        expect((await storage.stat(second.key)).size).toBe(2048);
      });

      it('replaces the object with { overwrite: true }, and by default with fileOverwrite', async () => {
        await storage.save('o/a.txt', 'one');
        expect((await storage.save('o/a.txt', 'two', { overwrite: true })).key).toBe('o/a.txt');
        expect(await text(await storage.open('o/a.txt'))).toBe('two');
        const { overwriting } = fixture;
        await overwriting.save('o/b.txt', 'one');
        expect((await overwriting.save('o/b.txt', patternStream(10))).key).toBe('o/b.txt');
        expect((await overwriting.stat('o/b.txt')).size).toBe(10);
        expect((await overwriting.save('o/b.txt', 'kept', { overwrite: false })).key).toMatch(ALTERNATIVE('o/', 'b', '.txt'));
        expect((await overwriting.stat('o/b.txt')).size).toBe(10);
      });

      // Without conditional writes (Swift) two saves racing for one name can get the same key:
      // then each key holds one whole save's bytes, and the saves that lost were replaced.
      const expectApart = (keys: string[]): void => {
        if (options.atomicNoOverwrite?.() ?? true) expect(new Set(keys).size).toBe(keys.length);
        else expect(new Set(keys).size).toBeGreaterThanOrEqual(1);
      };

      it('gives 50 concurrent small saves of one name 50 distinct keys (where atomic), every object intact', async () => {
        const bodies = Array.from({ length: 50 }, (_, i) => `body number ${i} ${randomUUID()}`);
        const results = await Promise.all(bodies.map((body) => storage.save('c/same.txt', body)));
        expectApart(results.map((r) => r.key));
        const distinct = new Set(results.map((r) => r.key)).size === results.length;
        for (const [i, result] of results.entries()) {
          expect(result.key === 'c/same.txt' || ALTERNATIVE('c/', 'same', '.txt').test(result.key)).toBe(true);
          const stored = await text(await storage.open(result.key));
          if (distinct) expect(stored).toBe(bodies[i]);
          else expect(bodies).toContain(stored);
        }
      });

      it('gives 50 concurrent large stream saves of one name 50 distinct keys (where atomic), every object intact', async () => {
        const size = options.largeStreamBytes;
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => storage.save('c/big.bin', patternStream(size, i))),
        );
        expectApart(results.map((r) => r.key));
        const hashes = await Promise.all(Array.from({ length: 50 }, (_, i) => sha256(patternStream(size, i))));
        const byKey = new Map(results.map((r, i) => [r.key, i]));
        for (const [key, seed] of byKey) {
          const stored = await sha256(await storage.open(key));
          if (byKey.size === results.length) expect(stored).toBe(hashes[seed]);
          else expect(hashes).toContain(stored);
        }
      });

      it('gives sequential saves of one name distinct keys, whatever the server', async () => {
        const keys = [];
        for (let i = 0; i < 5; i += 1) keys.push((await storage.save('c/seq.bin', i % 2 === 0 ? `small ${i}` : patternStream(options.largeStreamBytes, i))).key);
        expect(new Set(keys).size).toBe(5);
      });
    });

    describe('reserveKey', () => {
      for (const [kind, make] of [
        ['small', () => 'second'],
        ['large stream', () => patternStream(options.largeStreamBytes, 4)],
      ] as const) {
        it(`asks for each candidate (${kind}) before writing under it; false skips it`, async () => {
          await storage.save('rk/a.txt', 'first');
          const asked: string[] = [];
          const result = await storage.save('rk/a.txt', make(), {
            reserveKey: async (candidate) => {
              asked.push(candidate);
              // Nothing of this save is under the candidate yet.
              if (candidate !== 'rk/a.txt') expect(await storage.exists(candidate)).toBe(false);
              return asked.length !== 2;
            },
          });
          expect(asked[0]).toBe('rk/a.txt');
          expect(asked).toHaveLength(3);
          expect(result.key).toBe(asked[2]);
          expect(await storage.exists(asked[1] ?? '')).toBe(false);
          expect(await text(await storage.open('rk/a.txt'))).toBe('first');
        });
      }

      it('a reserveKey that throws abandons the save and leaves nothing', async () => {
        const boom = new Error('database down');
        const error = await storage
          .save('rk/b.bin', patternStream(options.largeStreamBytes, 5), { reserveKey: () => Promise.reject(boom) })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageWriteError);
        expect(error).toMatchObject({ key: 'rk/b.bin' });
        await expectNothingLeft(fixture);
      });

      it('an overwrite save whose key is refused fails and writes nothing', async () => {
        const error = await fixture.overwriting.save('rk/c.txt', 'x', { reserveKey: () => false }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageWriteError);
        await expectNothingLeft(fixture);
      });
    });

    describe('pending writes', () => {
      it('lists none when every save finished', async () => {
        await storage.save('pw/done.bin', patternStream(options.largeStreamBytes, 6));
        const pending = [];
        for await (const write of storage.listPendingWrites?.() ?? []) pending.push(write);
        expect(pending).toEqual([]);
      });

      it.runIf(options.leavesPendingWrites)('finds what a killed save left, honours prefix and startedBefore, and removes it', async () => {
        await fixture.strandWrite?.('pw/killed/report.bin');
        const list = async (query: Parameters<NonNullable<Storage['listPendingWrites']>>[0]) => {
          const found = [];
          for await (const write of storage.listPendingWrites?.(query) ?? []) found.push(write);
          return found;
        };
        const found = await list({ prefix: 'pw/', startedBefore: new Date(Date.now() + 60_000) });
        expect(found.length).toBeGreaterThan(0);
        expect(await fixture.leftovers()).not.toEqual([]);
        expect(await list({ prefix: 'elsewhere/' })).toEqual([]);
        expect(await list({ prefix: 'pw/', startedBefore: new Date(Date.now() - 3600_000) })).toEqual([]);
        for (const write of found) await storage.removePendingWrite?.(write);
        // Removing twice is fine.
        for (const write of found) await storage.removePendingWrite?.(write);
        expect(await list({})).toEqual([]);
        await expectNothingLeft(fixture);
      });
    });

    describe('abort and failure leave nothing behind', () => {
      it('an aborted stream save throws StorageAbortedError and leaves nothing', async () => {
        const controller = new AbortController();
        const size = options.largeStreamBytes * 3;
        const source = patternStream(size, 1, (sent) => {
          if (sent >= options.largeStreamBytes + 1024 * 1024) controller.abort();
        });
        const error = await storage.save('x/aborted.bin', source, { signal: controller.signal }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageAbortedError);
        expect(error).toMatchObject({ code: 'E_ABORTED', key: 'x/aborted.bin' });
        await expectNothingLeft(fixture);
      });

      it('an already-aborted signal writes nothing', async () => {
        const error = await storage.save('x/pre.txt', 'x', { signal: AbortSignal.abort() }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageAbortedError);
        await expectNothingLeft(fixture);
      });

      it('a source stream that errors midway throws StorageWriteError with the cause, and leaves nothing', async () => {
        const boom = new Error('disk on fire');
        const source = (async function* () {
          yield bytesOf(options.largeStreamBytes);
          yield bytesOf(1024 * 1024);
          throw boom;
        })();
        const error = await storage.save('x/broken.bin', source).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageWriteError);
        expect(error).toMatchObject({ code: 'E_WRITE_FAILED', key: 'x/broken.bin' });
        expect(String((error as Error).message)).toContain('x/broken.bin');
        expect((error as Error).cause).toBe(boom);
        await expectNothingLeft(fixture);
      });
    });

    describe('keys', () => {
      it.each(HOSTILE_KEYS)('refuses hostile key %j everywhere, writing nothing', async (key) => {
        await storage.save('ok/existing.txt', 'x');
        const attempts: Array<[string, () => Promise<unknown>]> = [
          ['save', () => storage.save(key, 'evil')],
          ['save stream', () => storage.save(key, Readable.from([Buffer.from('evil')]))],
          ['open', () => storage.open(key)],
          ['stat', () => storage.stat(key)],
          ['exists', () => storage.exists(key)],
          ['delete', () => storage.delete(key)],
          ['deleteMany', () => storage.deleteMany(['ok/existing.txt', key])],
          ['copy to', () => storage.copy('ok/existing.txt', key)],
          ['move to', () => storage.move('ok/existing.txt', key)],
          ['copy from', () => storage.copy(key, 'ok/copy.txt')],
          ['url', () => storage.url(key)],
        ];
        for (const [operation, attempt] of attempts) {
          const error = await attempt().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error, operation).toBeInstanceOf(InvalidKeyError);
          expect(isInvalidKeyError(error), operation).toBe(true);
          expect(error, operation).toMatchObject({ code: 'E_INVALID_KEY' });
        }
        // deleteMany validated every key before deleting the valid one.
        expect(await storage.exists('ok/existing.txt')).toBe(true);
        await storage.delete('ok/existing.txt');
        await expectNothingLeft(fixture);
      });
    });

    describe('stat, exists, delete, list', () => {
      it('reports a missing key as ObjectNotFoundError, exists() false, delete() fine', async () => {
        await expect(storage.open('nope/missing.txt')).rejects.toBeInstanceOf(ObjectNotFoundError);
        await expect(storage.stat('nope/missing.txt')).rejects.toMatchObject({ code: 'E_OBJECT_NOT_FOUND', key: 'nope/missing.txt' });
        expect(await storage.exists('nope/missing.txt')).toBe(false);
        await expect(storage.delete('nope/missing.txt')).resolves.toBeUndefined();
      });

      it('stats, deletes and forgets an object', async () => {
        const before = Date.now();
        await storage.save('d/file.json', '{"a":1}');
        const stat = await storage.stat('d/file.json');
        expect(stat.size).toBe(7);
        expect(stat.contentType).toBe('application/json');
        expect(Math.abs(stat.lastModified.getTime() - before)).toBeLessThan(120_000);
        expect(await storage.exists('d/file.json')).toBe(true);
        await storage.delete('d/file.json');
        expect(await storage.exists('d/file.json')).toBe(false);
      });

      it('lists everything under a prefix, and only that', async () => {
        const keys = ['a/1.txt', 'a/2.txt', 'a/b/3.txt', 'a/b/c/4.txt', 'ab/5.txt', 'z.txt'];
        for (const key of keys) await storage.save(key, key);
        const list = async (prefix: string) => {
          const out: string[] = [];
          for await (const entry of storage.list(prefix)) out.push(entry.key);
          return out.sort();
        };
        expect(await list('a/')).toEqual(['a/1.txt', 'a/2.txt', 'a/b/3.txt', 'a/b/c/4.txt']);
        expect(await list('a')).toEqual(['a/1.txt', 'a/2.txt', 'a/b/3.txt', 'a/b/c/4.txt', 'ab/5.txt']);
        expect(await list('')).toEqual([...keys].sort());
        expect(await list('none/')).toEqual([]);
        for await (const entry of storage.list('a/b/c/')) expect(entry).toMatchObject({ key: 'a/b/c/4.txt', size: 11 });
      });
    });

    describe('deleteMany', () => {
      const listAll = async (prefix: string): Promise<string[]> => {
        const keys: string[] = [];
        for await (const entry of storage.list(prefix)) keys.push(entry.key);
        return keys.sort();
      };
      const saveAll = async (keys: readonly string[]): Promise<void> => {
        await Promise.all(keys.map((key) => storage.save(key, `body of ${key}`)));
      };

      it('deletes exactly the listed keys, not keys they are a prefix of or that are a prefix of them', async () => {
        await saveAll(['dm/a', 'dm/ab', 'dm/abc', 'dm/sub/c.txt', 'dm/sub/d.txt', 'dm/keep.txt']);
        await storage.deleteMany(['dm/ab', 'dm/sub/c.txt']);
        expect(await listAll('dm/')).toEqual(['dm/a', 'dm/abc', 'dm/keep.txt', 'dm/sub/d.txt']);
        expect(await text(await storage.open('dm/abc'))).toBe('body of dm/abc');
      });

      it('takes missing keys, duplicates and any iterable of keys in its stride', async () => {
        await saveAll(['dm/x.txt', 'dm/y.txt', 'dm/z.txt']);
        await expect(storage.deleteMany(['dm/x.txt', 'dm/x.txt', 'dm/missing.txt', 'nowhere/at/all.txt', 'dm/x.txt'])).resolves.toBeUndefined();
        expect(await listAll('dm/')).toEqual(['dm/y.txt', 'dm/z.txt']);
        await storage.deleteMany(new Set(['dm/y.txt']));
        await storage.deleteMany(
          (function* () {
            yield 'dm/z.txt';
            yield 'dm/z.txt';
          })(),
        );
        await expectNothingLeft(fixture);
      });

      it('does nothing for an empty list', async () => {
        await saveAll(['dm/kept.txt']);
        await expect(storage.deleteMany([])).resolves.toBeUndefined();
        expect(await listAll('dm/')).toEqual(['dm/kept.txt']);
      });

      it('throws InvalidKeyError for an invalid key (or a bare string) and deletes nothing', async () => {
        const keys = ['dm/first.txt', 'dm/second.txt'];
        await saveAll(keys);
        for (const input of [['dm/first.txt', '../escape.txt', 'dm/second.txt'], ['dm/first.txt', 'dm//double.txt'], 'dm/first.txt']) {
          const error = await storage.deleteMany(input).catch((e: unknown) => e);
          expect(error, JSON.stringify(input)).toBeInstanceOf(InvalidKeyError);
          expect(error).toMatchObject({ code: 'E_INVALID_KEY' });
        }
        expect(await listAll('dm/')).toEqual(keys);
      });

      it('throws StorageAbortedError for an already-aborted signal and deletes nothing', async () => {
        await saveAll(['dm/a.txt', 'dm/b.txt']);
        const error = await storage.deleteMany(['dm/a.txt', 'dm/b.txt'], { signal: AbortSignal.abort() }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageAbortedError);
        expect(error).toMatchObject({ code: 'E_ABORTED' });
        expect(await listAll('dm/')).toEqual(['dm/a.txt', 'dm/b.txt']);
      });

      it('deletes more keys than it sends at once (Unicode keys too), leaving nothing behind', async () => {
        const keys = Array.from({ length: 45 }, (_, i) => `dm/many/${i % 3 === 0 ? 'résumé 报告' : 'file'}-${i}.txt`);
        await saveAll(keys);
        expect(await listAll('dm/many/')).toHaveLength(45);
        await storage.deleteMany(keys);
        await expectNothingLeft(fixture);
      });
    });

    describe('list order and paging', () => {
      it('lists in key order and resumes after startAfter', async () => {
        for (const key of ['lo/c.txt', 'lo/a-b.txt', 'lo/a/x.txt', 'lo/a/y.txt', 'lo/b.txt']) await storage.save(key, 'x');
        const list = async (options?: { startAfter: string }) => {
          const keys = [];
          for await (const entry of storage.list('lo/', options)) keys.push(entry.key);
          return keys;
        };
        expect(await list()).toEqual(['lo/a-b.txt', 'lo/a/x.txt', 'lo/a/y.txt', 'lo/b.txt', 'lo/c.txt']);
        expect(await list({ startAfter: 'lo/a/x.txt' })).toEqual(['lo/a/y.txt', 'lo/b.txt', 'lo/c.txt']);
        expect(await list({ startAfter: 'lo/a-b.txt' })).toEqual(['lo/a/x.txt', 'lo/a/y.txt', 'lo/b.txt', 'lo/c.txt']);
        expect(await list({ startAfter: 'lo/c.txt' })).toEqual([]);
      });
    });

    describe('copy and move', () => {
      it('copies, keeping the source', async () => {
        await storage.save('cp/src.txt', 'payload');
        expect(await storage.copy('cp/src.txt', 'cp/dst.txt')).toEqual({ key: 'cp/dst.txt' });
        expect(await text(await storage.open('cp/dst.txt'))).toBe('payload');
        expect(await storage.exists('cp/src.txt')).toBe(true);
      });

      it('does not overwrite on copy or move unless asked', async () => {
        await storage.save('cp/src.txt', 'new');
        await storage.save('cp/dst.txt', 'old');
        const copied = await storage.copy('cp/src.txt', 'cp/dst.txt');
        expect(copied.key).toMatch(ALTERNATIVE('cp/', 'dst', '.txt'));
        expect(await text(await storage.open('cp/dst.txt'))).toBe('old');
        await storage.copy('cp/src.txt', 'cp/dst.txt', { overwrite: true });
        expect(await text(await storage.open('cp/dst.txt'))).toBe('new');
        const moved = await storage.move('cp/src.txt', 'cp/dst.txt');
        expect(moved.key).toMatch(ALTERNATIVE('cp/', 'dst', '.txt'));
        expect(await storage.exists('cp/src.txt')).toBe(false);
      });

      it('moves, removing the source', async () => {
        await storage.save('mv/src.txt', 'payload');
        expect(await storage.move('mv/src.txt', 'mv/deeper/dst.txt')).toEqual({ key: 'mv/deeper/dst.txt' });
        expect(await text(await storage.open('mv/deeper/dst.txt'))).toBe('payload');
        expect(await storage.exists('mv/src.txt')).toBe(false);
      });

      it('throws ObjectNotFoundError for a missing source and writes nothing', async () => {
        await expect(storage.copy('cp/missing.txt', 'cp/dst.txt')).rejects.toMatchObject({
          code: 'E_OBJECT_NOT_FOUND',
          key: 'cp/missing.txt',
        });
        await expect(storage.move('cp/missing.txt', 'cp/dst.txt')).rejects.toBeInstanceOf(ObjectNotFoundError);
        await expectNothingLeft(fixture);
      });
    });

    describe('presignUpload', () => {
      presignUploadContract(() => fixture, { keepsMetadata: options.keepsMetadata });
    });

    describe('url', () => {
      it('percent-encodes the key', async () => {
        const { key } = await storage.save('u/a file #1?.txt', 'x');
        const url = await storage.url(key);
        expect(url).toContain('u/a%20file%20%231%3F.txt');
      });

      it('adds an RFC 5987 attachment disposition for download', async () => {
        const { key } = await storage.save('u/report.pdf', 'x');
        const url = new URL(await storage.url(key, { download: 'Résumé 2026.pdf' }), 'http://localhost/');
        expect(url.searchParams.get('response-content-disposition')).toBe(
          `attachment; filename="R_sum_ 2026.pdf"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf`,
        );
      });
    });
  });
}

