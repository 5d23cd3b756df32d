/**
 * FileSystemStorage extras that only a filesystem has: symlinks, temp files, file and directory
 * modes, the root directory, and atomic replacement. The shared rules live in the contract suite.
 * Each test gets its own sandbox: the storage root is `<sandbox>/media`, and `<sandbox>/outside`
 * holds a file the storage must never reach.
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InvalidKeyError, ObjectNotFoundError } from '../../src/index.js';
import { FileSystemStorage } from '../../src/storage/fs/index.js';
import { readAll, sha256, patternStream } from '../helpers/streams.js';

const SECRET = 'top secret, outside the storage root';

let sandbox: string;
let root: string;
let outside: string;

beforeEach(async () => {
  sandbox = await mkdtemp(path.join(tmpdir(), 'doorito-fs-unit-'));
  root = path.join(sandbox, 'media');
  outside = path.join(sandbox, 'outside');
  await mkdir(outside);
  await writeFile(path.join(outside, 'secret.txt'), SECRET);
});

afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

/** Every entry under `dir` (directories end in `/`), with file contents, for before/after checks. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const rel = path.relative(dir, path.join(entry.parentPath, entry.name));
    out[entry.isDirectory() ? `${rel}/` : rel] = entry.isFile() ? await readFile(path.join(dir, rel), 'utf8') : '';
  }
  return out;
}

async function listKeys(storage: FileSystemStorage, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of storage.list(prefix)) keys.push(entry.key);
  return keys.sort();
}

const rejection = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('a symlinked directory inside the root that points outside it', () => {
  let storage: FileSystemStorage;

  beforeEach(async () => {
    storage = new FileSystemStorage({ location: root });
    await storage.save('inside.txt', 'inside');
    await symlink(outside, path.join(root, 'link'), 'dir');
  });

  it('refuses save, open, stat, exists, copy, move and delete through it, and writes nothing outside', async () => {
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['save', () => storage.save('link/evil.txt', 'evil')],
      ['save stream', () => storage.save('link/evil.bin', Readable.from([Buffer.from('evil')]))],
      ['save over', () => storage.save('link/secret.txt', 'evil', { overwrite: true })],
      ['open', () => storage.open('link/secret.txt')],
      ['stat', () => storage.stat('link/secret.txt')],
      ['exists', () => storage.exists('link/secret.txt')],
      ['copy into', () => storage.copy('inside.txt', 'link/copied.txt')],
      ['copy out of', () => storage.copy('link/secret.txt', 'stolen.txt')],
      ['move into', () => storage.move('inside.txt', 'link/moved.txt', { overwrite: true })],
      ['move out of', () => storage.move('link/secret.txt', 'stolen.txt')],
      ['delete', () => storage.delete('link/secret.txt')],
    ];
    for (const [operation, attempt] of attempts) {
      const error = await rejection(attempt());
      expect(error, operation).toBeInstanceOf(InvalidKeyError);
      expect(error, operation).toMatchObject({ code: 'E_INVALID_KEY' });
    }
    expect(await snapshot(outside)).toEqual({ 'secret.txt': SECRET });
    expect(await listKeys(storage)).toEqual(['inside.txt']);
    expect(await readFile(path.join(root, 'inside.txt'), 'utf8')).toBe('inside');
  });

  // Regression (was a bug): save/copy/move call mkdir(<root>/link/new/deeper, { recursive: true }) before checking
  // where the directory really is, so they create new/ and new/deeper/ inside <outside> and only
  // then refuse the key.
  it('creates no directories outside the root for a key that goes through it into new directories', async () => {
    // One at a time: each is started only when the previous one has been checked.
    const attempts = [
      () => storage.save('link/new/deeper/evil.txt', 'evil'),
      () => storage.copy('inside.txt', 'link/copied/evil.txt'),
      () => storage.move('inside.txt', 'link/moved/evil.txt'),
    ];
    for (const attempt of attempts) expect(await rejection(attempt())).toBeInstanceOf(InvalidKeyError);
    expect(await snapshot(outside)).toEqual({ 'secret.txt': SECRET });
  });

  // Regression (was a bug): list('link/') reads <outside> through the link and reports its files (names, sizes,
  // dates) as keys, although list('') skips the link and open()/stat() refuse those keys.
  it('lists nothing from outside the root, whatever the prefix', async () => {
    expect(await listKeys(storage)).toEqual(['inside.txt']);
    const listed = await listKeys(storage, 'link/').catch((error: unknown) => {
      expect(error).toBeInstanceOf(InvalidKeyError);
      return [];
    });
    expect(listed).toEqual([]);
  });
});

describe('a symlinked file inside the root that points outside it', () => {
  let storage: FileSystemStorage;
  let link: string;

  beforeEach(async () => {
    storage = new FileSystemStorage({ location: root });
    await storage.save('docs/real.txt', 'real');
    link = path.join(root, 'docs', 'evil.txt');
    await symlink(path.join(outside, 'secret.txt'), link, 'file');
  });

  it('refuses to open, stat, copy or move it with InvalidKeyError, and does not list it', async () => {
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['open', () => storage.open('docs/evil.txt')],
      ['stat', () => storage.stat('docs/evil.txt')],
      ['copy', () => storage.copy('docs/evil.txt', 'docs/stolen.txt')],
      ['move', () => storage.move('docs/evil.txt', 'docs/stolen.txt')],
    ];
    for (const [operation, attempt] of attempts) {
      const error = await rejection(attempt());
      expect(error, operation).toBeInstanceOf(InvalidKeyError);
      expect((error as InvalidKeyError).reason, operation).toMatch(/outside the storage root/u);
    }
    expect(await listKeys(storage)).toEqual(['docs/real.txt']);
    expect(await snapshot(outside)).toEqual({ 'secret.txt': SECRET });
  });

  it('delete() removes only the link, never its target', async () => {
    await storage.delete('docs/evil.txt');
    await expect(lstat(link)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe(SECRET);
    expect(await readFile(path.join(root, 'docs', 'real.txt'), 'utf8')).toBe('real');
  });
});

describe('list()', () => {
  it('never shows in-flight temp files, but shows dotfiles such as .env', async () => {
    const storage = new FileSystemStorage({ location: root });
    await storage.save('dir/a.txt', 'a');
    await storage.save('dir/.env', 'SECRET=1');
    await writeFile(path.join(root, 'dir', '.doorito-AAAAAAAAAAAAAAAA.tmp'), 'half a file');
    await writeFile(path.join(root, '.doorito-0123456789abcdef.tmp'), 'half a file');
    // Only the exact temp-name pattern is hidden; a user's file that merely looks similar is not.
    await writeFile(path.join(root, 'dir', '.doorito-notes.tmp'), 'mine');
    expect(await listKeys(storage, 'dir/')).toEqual(['dir/.doorito-notes.tmp', 'dir/.env', 'dir/a.txt']);
    expect(await listKeys(storage)).toEqual(['dir/.doorito-notes.tmp', 'dir/.env', 'dir/a.txt']);
  });
});

describe('file and directory modes', () => {
  let previousUmask: number;
  beforeEach(() => {
    previousUmask = process.umask(0o022);
  });
  afterEach(() => {
    process.umask(previousUmask);
  });

  const modeOf = async (...parts: string[]): Promise<number> => (await stat(path.join(root, ...parts))).mode & 0o777;

  it('writes files with fileMode and creates directories with directoryMode', async () => {
    const storage = new FileSystemStorage({ location: root, fileMode: 0o600, directoryMode: 0o700 });
    await storage.save('a/b/bytes.txt', 'x');
    await storage.save('a/b/stream.bin', Readable.from([Buffer.from('stream')]));
    const renamed = await storage.save('a/b/bytes.txt', 'taken');
    await storage.save('a/b/stream.bin', 'replaced', { overwrite: true });
    await storage.copy('a/b/bytes.txt', 'a/copy/bytes.txt');
    await storage.move('a/b/stream.bin', 'a/moved/stream.bin');
    for (const file of ['a/b/bytes.txt', renamed.key, 'a/copy/bytes.txt', 'a/moved/stream.bin']) {
      expect(await modeOf(...file.split('/')), file).toBe(0o600);
    }
    for (const dir of ['', 'a', 'a/b', 'a/copy', 'a/moved']) {
      expect(await modeOf(...dir.split('/').filter(Boolean)), `dir "${dir}"`).toBe(0o700);
    }
  });

  it('defaults to 0o644 and 0o755, and applies the process umask to fileMode', async () => {
    const defaults = new FileSystemStorage({ location: root });
    await defaults.save('d/file.txt', 'x');
    expect(await modeOf('d', 'file.txt')).toBe(0o644);
    expect(await modeOf('d')).toBe(0o755);
    expect(await modeOf()).toBe(0o755);

    const groupWritable = new FileSystemStorage({ location: root, fileMode: 0o666 });
    await groupWritable.save('d/shared.txt', 'x');
    expect(await modeOf('d', 'shared.txt')).toBe(0o666 & ~0o022);
  });
});

describe('location and url()', () => {
  it('creates the location, with missing parents, on first use and not before', async () => {
    const location = path.join(sandbox, 'not', 'yet', 'media');
    const storage = new FileSystemStorage({ location });
    expect(storage.location).toBe(location);
    expect(existsSync(location)).toBe(false);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => storage.save(`first/${i}.txt`, `${i}`)));
    expect(results.map((r) => r.key)).toEqual(Array.from({ length: 10 }, (_, i) => `first/${i}.txt`));
    expect((await stat(location)).isDirectory()).toBe(true);
    expect(await readFile(path.join(location, 'first', '7.txt'), 'utf8')).toBe('7');
  });

  it('resolves a relative location to an absolute path', () => {
    const relative = path.relative(process.cwd(), root);
    expect(new FileSystemStorage({ location: relative }).location).toBe(root);
  });

  it('builds url() from baseUrl and the percent-encoded key', async () => {
    const storage = new FileSystemStorage({ location: root, baseUrl: 'https://cdn.example.com/media/' });
    expect(await storage.url('u/a file #1?.txt')).toBe('https://cdn.example.com/media/u/a%20file%20%231%3F.txt');
    expect(await storage.url("报告/it's (1)*!.pdf")).toBe(
      'https://cdn.example.com/media/%E6%8A%A5%E5%91%8A/it%27s%20%281%29%2A%21.pdf',
    );
    expect(await new FileSystemStorage({ location: root }).url('docs/report.pdf')).toBe('/media/docs/report.pdf');
  });

  it('util.inspect() shows the location and stays short', () => {
    const storage = new FileSystemStorage({ location: root, baseUrl: 'https://cdn.example.com/media/' });
    const shown = inspect(storage);
    expect(shown).toContain(root);
    expect(shown).not.toContain('\n');
    expect(shown.length).toBeLessThan(root.length + 120);
  });
});

describe('atomic writes', () => {
  it("20 concurrent overwriting saves leave exactly one writer's full content and no temp files", async () => {
    const storage = new FileSystemStorage({ location: root });
    const size = 512 * 1024 + 3;
    const writers = Array.from({ length: 20 }, (_, seed) => seed);
    const expected = await Promise.all(writers.map((seed) => sha256(patternStream(size, seed))));
    expect(new Set(expected).size).toBe(20);
    // Start from writer 0's content so that every read, even the first, must see a whole object.
    await storage.save('race/same.bin', patternStream(size, 0));

    let racing = true;
    const seen: string[] = [];
    const reader = (async () => {
      while (racing) seen.push(await sha256(await storage.open('race/same.bin')));
    })();
    const results = await Promise.all(
      writers.map((seed) => storage.save('race/same.bin', patternStream(size, seed), { overwrite: true })),
    );
    racing = false;
    await reader;

    expect(results.every((r) => r.key === 'race/same.bin' && r.size === size)).toBe(true);
    expect(seen.length).toBeGreaterThan(0);
    for (const hash of seen) expect(expected).toContain(hash);
    expect((await stat(path.join(root, 'race', 'same.bin'))).size).toBe(size);
    expect(expected).toContain(await sha256(await storage.open('race/same.bin')));
    expect(await readdir(path.join(root, 'race'))).toEqual(['same.bin']);
  });

  /** A stream that yields `first`, then waits for release() before yielding `rest`. */
  function pausingStream(first: Buffer, rest: Buffer): { stream: Readable; release: () => void } {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const stream = Readable.from(
      (async function* () {
        yield first;
        await gate;
        yield rest;
      })(),
    );
    return { stream, release };
  }

  /** Wait until the partial content is really on disk in a temp file next to the key. */
  async function waitForPartialFile(dir: string, bytes: number): Promise<void> {
    await vi.waitFor(
      async () => {
        const names = (await readdir(dir)).filter((name) => name.startsWith('.doorito-'));
        expect(names).toHaveLength(1);
        expect((await stat(path.join(dir, names[0] ?? ''))).size).toBe(bytes);
      },
      { timeout: 10_000, interval: 10 },
    );
  }

  it('a read during a slow stream save sees no object, then the full content', async () => {
    const storage = new FileSystemStorage({ location: root });
    await storage.save('slow/other.txt', 'creates the directory');
    const first = Buffer.alloc(100_000, 'a');
    const rest = Buffer.alloc(50_000, 'b');
    const { stream, release } = pausingStream(first, rest);
    const saving = storage.save('slow/file.bin', stream);

    await waitForPartialFile(path.join(root, 'slow'), first.length);
    expect(await storage.exists('slow/file.bin')).toBe(false);
    await expect(storage.open('slow/file.bin')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(storage.stat('slow/file.bin')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await listKeys(storage, 'slow/')).toEqual(['slow/other.txt']);

    release();
    expect(await saving).toMatchObject({ key: 'slow/file.bin', size: 150_000 });
    expect(await storage.exists('slow/file.bin')).toBe(true);
    expect((await readAll(await storage.open('slow/file.bin'))).equals(Buffer.concat([first, rest]))).toBe(true);
    expect((await readdir(path.join(root, 'slow'))).sort()).toEqual(['file.bin', 'other.txt']);
  });

  it('a read during a slow overwriting save sees the old content whole, then the new', async () => {
    const storage = new FileSystemStorage({ location: root });
    const old = Buffer.alloc(120_000, 'o');
    await storage.save('slow/file.bin', old);
    // A download opened before the overwrite keeps reading the old file, whole, after it.
    const download = await storage.open('slow/file.bin');
    const first = Buffer.alloc(100_000, 'n');
    const rest = Buffer.alloc(50_000, 'w');
    const { stream, release } = pausingStream(first, rest);
    const saving = storage.save('slow/file.bin', stream, { overwrite: true });

    await waitForPartialFile(path.join(root, 'slow'), first.length);
    expect((await readAll(await storage.open('slow/file.bin'))).equals(old)).toBe(true);
    expect((await storage.stat('slow/file.bin')).size).toBe(old.length);

    release();
    await saving;
    expect((await readAll(download)).equals(old)).toBe(true);
    expect((await readAll(await storage.open('slow/file.bin'))).equals(Buffer.concat([first, rest]))).toBe(true);
    expect(await readdir(path.join(root, 'slow'))).toEqual(['file.bin']);
  });
});
