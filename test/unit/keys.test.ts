/**
 * The key and filename rules every Storage relies on: what validateKey() lets through and why it
 * refuses the rest, how getValidName() cleans a user's filename, how alternativeName() builds a
 * de-duplicated name, and how keys and download names are put into URLs and headers.
 */
import { validateHeaderValue } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  InvalidKeyError,
  MAX_KEY_BYTES,
  MAX_SEGMENT_BYTES,
  alternativeName,
  attachmentDisposition,
  encodeKeyForUrl,
  getValidName,
  validateKey,
  validatePrefix,
} from '../../src/index.js';

const bytes = (value: string): number => Buffer.byteLength(value, 'utf8');
const lastSegment = (key: string): string => key.slice(key.lastIndexOf('/') + 1);
const SUFFIX = '[a-zA-Z0-9]{7}';

/** The InvalidKeyError that `attempt` throws; any other outcome fails the test. */
function refusal(attempt: () => unknown): InvalidKeyError {
  try {
    attempt();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidKeyError);
    return error as InvalidKeyError;
  }
  return expect.fail('expected an InvalidKeyError, but nothing was thrown');
}

describe('validateKey', () => {
  it.each([
    'uploads/2026/11/报告.pdf',
    'отчёты/Ünïcödé résumé.pdf',
    '📄/файл.txt',
    'report.pdf',
    '.env',
    'a/.hidden/...',
    'a..b/c.d.e',
    'percent%20literal.txt',
    '100%.txt',
    "sp€ci@l/!'()*+,;=&$#?.bin",
  ])('accepts %j and returns it unchanged', (key) => {
    expect(validateKey(key)).toBe(key);
  });

  it('accepts a segment of exactly 255 UTF-8 bytes and refuses 256, counting bytes not characters', () => {
    const ascii = 'x'.repeat(MAX_SEGMENT_BYTES);
    const euros = '€'.repeat(85); // 3 bytes each
    expect(bytes(euros)).toBe(255);
    expect(validateKey(`dir/${ascii}`)).toBe(`dir/${ascii}`);
    expect(validateKey(`dir/${euros}`)).toBe(`dir/${euros}`);
    expect(refusal(() => validateKey(`dir/${ascii}x`)).reason).toMatch(/segment is longer than 255 UTF-8 bytes/u);
    expect(refusal(() => validateKey(`dir/${euros}x`)).reason).toMatch(/segment is longer than 255 UTF-8 bytes/u);
  });

  it('accepts a key of exactly 1024 UTF-8 bytes and refuses 1025', () => {
    const segment = '报'.repeat(80); // 240 bytes
    const base = `${segment}/${segment}/${segment}/${segment}/`; // 964 bytes
    const exact = `${base}${'y'.repeat(MAX_KEY_BYTES - bytes(base))}`;
    expect(bytes(exact)).toBe(1024);
    expect(validateKey(exact)).toBe(exact);
    const error = refusal(() => validateKey(`${exact}z`));
    expect(error.reason).toMatch(/longer than 1024 UTF-8 bytes/u);
    expect(error.key).toBe(`${exact}z`);
  });

  it.each<[string, string, RegExp]>([
    ['empty', '', /empty/u],
    ['leading slash', '/etc/passwd', /starts with "\/"/u],
    ['double slash', 'a//b.txt', /empty segment/u],
    ['trailing slash', 'uploads/', /trailing "\/"/u],
    ['"." segment', 'a/./b.txt', /"\." segment/u],
    ['lone "."', '.', /"\." segment/u],
    ['".." segment', '../escape.txt', /"\.\." segment/u],
    ['".." deeper down', 'a/b/../../../escape.txt', /"\.\." segment/u],
    ['encoded ".."', '%2e%2e/escape.txt', /percent-decodes to "\.\."/u],
    ['encoded ".." in capitals', 'a/%2E%2E/escape.txt', /percent-decodes to "\.\."/u],
    ['half-encoded ".."', 'a/.%2e/escape.txt', /percent-decodes to "\.\."/u],
    ['encoded "."', 'a/%2e/b.txt', /percent-decodes to "\."/u],
    ['double-encoded ".."', '%252e%252e/escape.txt', /percent-decodes to "\.\."/u],
    ['double-encoded "."', 'a/%252E/b.txt', /percent-decodes to "\."/u],
    ['encoded "/" hiding ".."', 'a/..%2fescape.txt', /percent-decodes to a separator/u],
    ['encoded backslash', 'a/..%5cescape.txt', /percent-decodes to a separator/u],
    ['encoded NUL', 'a/b%00.txt', /percent-decodes to a separator or a control character/u],
    ['NUL', 'nul\u0000byte.txt', /NUL or control character/u],
    ['BEL', 'bell\u0007.txt', /NUL or control character/u],
    ['newline', 'new\nline.txt', /NUL or control character/u],
    ['tab', 'tab\there.txt', /NUL or control character/u],
    ['DEL', 'del\u007f.txt', /NUL or control character/u],
    ['C1 NEL', 'c1\u0085.txt', /NUL or control character/u],
    ['C1 APC', 'c1\u009f.txt', /NUL or control character/u],
    ['backslash', 'back\\slash.txt', /backslash/u],
    ['Windows path', 'C:\\Windows\\win.ini', /backslash/u],
    ['segment over 255 bytes', `a/${'é'.repeat(128)}`, /segment is longer than 255/u],
    ['key over 1024 bytes', `${'dir/'.repeat(256)}f`, /longer than 1024 UTF-8 bytes/u],
    ['lone high surrogate', 'lone\ud800surrogate.txt', /lone UTF-16 surrogate/u],
    ['lone low surrogate', 'a/\udc00.txt', /lone UTF-16 surrogate/u],
  ])('refuses a key with %s (%j), saying why', (_rule, key, reason) => {
    const error = refusal(() => validateKey(key));
    expect(error).toMatchObject({ code: 'E_INVALID_KEY', name: 'InvalidKeyError', key });
    expect(error.reason).toMatch(reason);
    expect(error.message).toContain(error.reason);
    expect(error.message).toContain(JSON.stringify(key));
  });

  it('refuses a value that is not a string (a JavaScript caller passing undefined)', () => {
    const error = refusal(() => validateKey(undefined as unknown as string));
    expect(error.reason).toMatch(/not a string/u);
  });
});

describe('validatePrefix', () => {
  it.each(['', 'a', 'a/', 'a/b/', 'uploads/2026/报告'])('accepts %j', (prefix) => {
    expect(validatePrefix(prefix)).toBe(prefix);
  });

  it.each(['../', '..', 'a/../', '/', '/a/', 'a//', '%2e%2e/', 'a\\b/'])('refuses %j with InvalidKeyError', (prefix) => {
    expect(refusal(() => validatePrefix(prefix)).code).toBe('E_INVALID_KEY');
  });
});

describe('getValidName', () => {
  it("moves a user's name out of the reserved temp-file namespace", () => {
    expect(getValidName('.doorito-0123456789abcdef.tmp')).toBe('_doorito-0123456789abcdef.tmp');
    expect(getValidName('.DOORITO-x.txt')).toBe('_DOORITO-x.txt');
    expect(getValidName('.doorito.txt')).toBe('.doorito.txt');
    expect(() => validateKey(`uploads/${getValidName('.doorito-0123456789abcdef.tmp')}`)).not.toThrow();
  });

  it.each([
    ['C:\\Users\\me\\My Report (final).pdf', 'My_Report_final.pdf'],
    ['../../etc/passwd', 'passwd'],
    ['/var/www/../../secret.txt', 'secret.txt'],
    ['dir/sub\\mixed/seps\\name.txt', 'name.txt'],
    ['  report.pdf  ', 'report.pdf'],
    ['my report v2.pdf', 'my_report_v2.pdf'],
    ['tab\tand\u3000ideographic space.txt', 'tab_and_ideographic_space.txt'],
    ['inv@lid #name$!&(1).txt', 'invlid_name1.txt'],
    ['报告 2026.pdf', '报告_2026.pdf'],
    ['Отчёт за ноябрь.docx', 'Отчёт_за_ноябрь.docx'],
    ['café-crème_v1.0.tar.gz', 'café-crème_v1.0.tar.gz'],
    ['हिन्दी.txt', 'हिन्दी.txt'],
    ['nul\u0000and\u0007bell\u0085.txt', 'nulandbell.txt'],
    ['lone\ud800surrogate.txt', 'lonesurrogate.txt'],
    ['📄 notes.txt', '_notes.txt'],
    ['.env', '.env'],
  ])('turns %j into %j', (input, expected) => {
    expect(getValidName(input)).toBe(expected);
  });

  it('NFC-normalises, so a decomposed accent becomes the single composed character', () => {
    const decomposed = 'cafe\u0301.txt';
    const name = getValidName(decomposed);
    expect(name).toBe('caf\u00e9.txt');
    expect(name).toHaveLength(8);
  });

  it.each(['', '   ', '.', '..', '...', '!!!', '@#$%^&*', 'dir/', 'C:\\dir\\..', '(((.)))', '📄📄'])(
    'refuses %j, which has no usable characters, with InvalidKeyError',
    (input) => {
      const error = refusal(() => getValidName(input));
      expect(error).toMatchObject({ code: 'E_INVALID_KEY', key: input });
      expect(error.reason).toMatch(/no usable characters/u);
    },
  );

  it('shortens an overlong name to 200 bytes by default, keeping the extension', () => {
    expect(getValidName(`${'a'.repeat(300)}.pdf`)).toBe(`${'a'.repeat(196)}.pdf`);
  });

  it('never splits a multibyte character when shortening', () => {
    const cjk = getValidName(`${'报'.repeat(100)}.pdf`); // 3 bytes each
    expect(cjk).toBe(`${'报'.repeat(65)}.pdf`);
    const astral = getValidName(`${'𠀀'.repeat(60)}.txt`); // 4 bytes each, a surrogate pair in UTF-16
    expect(astral).toBe(`${'𠀀'.repeat(49)}.txt`);
    expect(astral.isWellFormed()).toBe(true);
    expect(bytes(astral)).toBe(200);
  });

  it('honours maxBytes', () => {
    expect(getValidName('abcdefghij.txt', { maxBytes: 8 })).toBe('abcd.txt');
    expect(bytes(getValidName('ééééééééé.txt', { maxBytes: 9 }))).toBeLessThanOrEqual(9);
  });

  it('always returns a name that validateKey accepts as a single segment', () => {
    const inputs = [
      'C:\\Users\\me\\My Report (final).pdf',
      '../../etc/passwd',
      `${'报'.repeat(300)}.tar.gz`,
      `${'x'.repeat(1000)}`,
      '..a',
      '.%2e%2e',
      '%252e%252e',
      ' \u00a0name\u2028with\u2029separators.txt',
      `${'e\u0301'.repeat(200)}.txt`,
    ];
    for (const input of inputs) {
      const name = getValidName(input);
      expect(validateKey(name), input).toBe(name);
      expect(name, input).not.toContain('/');
      expect(bytes(name), input).toBeLessThanOrEqual(200);
    }
  });

  // Regression (was a bug): with a small maxBytes the shortened name can be ".." (or "."), which the docs say is
  // refused and which validateKey() refuses. Shortening must not produce a forbidden name.
  it('never returns "." or ".." after shortening to a small maxBytes', () => {
    for (const maxBytes of [1, 2]) {
      let name: string | undefined;
      try {
        name = getValidName('..hidden', { maxBytes });
      } catch (error) {
        // Refusing the input is an acceptable outcome; returning a forbidden name is not.
        expect(error).toBeInstanceOf(InvalidKeyError);
      }
      if (name !== undefined) expect(validateKey(name)).toBe(name);
    }
  });
});

describe('alternativeName', () => {
  it.each<[string, RegExp]>([
    ['uploads/2026/11/report.pdf', new RegExp(`^uploads/2026/11/report_${SUFFIX}\\.pdf$`, 'u')],
    ['report.pdf', new RegExp(`^report_${SUFFIX}\\.pdf$`, 'u')],
    ['archive.tar.gz', new RegExp(`^archive\\.tar_${SUFFIX}\\.gz$`, 'u')],
    ['.env', new RegExp(`^\\.env_${SUFFIX}$`, 'u')],
    ['config/.env', new RegExp(`^config/\\.env_${SUFFIX}$`, 'u')],
    ['README', new RegExp(`^README_${SUFFIX}$`, 'u')],
    ['dir.d/README', new RegExp(`^dir\\.d/README_${SUFFIX}$`, 'u')],
    ['报告/年度 报告.pdf', new RegExp(`^报告/年度 报告_${SUFFIX}\\.pdf$`, 'u')],
  ])('turns %j into <dir><stem>_<7 chars><ext>', (key, pattern) => {
    const name = alternativeName(key);
    expect(name).toMatch(pattern);
    expect(validateKey(name)).toBe(name);
  });

  it('shortens a 250-byte stem so the segment stays within 255 bytes and still validates', () => {
    const ascii = alternativeName(`docs/${'x'.repeat(250)}.pdf`);
    expect(ascii).toMatch(new RegExp(`^docs/x+_${SUFFIX}\\.pdf$`, 'u'));
    expect(bytes(lastSegment(ascii))).toBe(255);
    expect(validateKey(ascii)).toBe(ascii);

    const cjk = alternativeName(`docs/${'报'.repeat(83)}.txt`); // 249-byte stem
    expect(cjk).toMatch(new RegExp(`^docs/报+_${SUFFIX}\\.txt$`, 'u'));
    expect(bytes(lastSegment(cjk))).toBeLessThanOrEqual(255);
    expect(cjk.isWellFormed()).toBe(true);
    expect(validateKey(cjk)).toBe(cjk);
  });

  it('gives 1000 calls (nearly) all-distinct names, using the whole [a-zA-Z0-9] alphabet', () => {
    const names = Array.from({ length: 1000 }, () => alternativeName('uploads/report.pdf'));
    expect(new Set(names).size).toBeGreaterThanOrEqual(999);
    const used = new Set(names.flatMap((name) => [...name.slice('uploads/report_'.length, -'.pdf'.length)]));
    expect(used.size).toBe(62);
  });

  // Regression (was a bug): the stem is shortened only against the segment limit, and only down to one character, so
  // a valid key with a long extension gets an alternative whose segment passes 255 bytes. On the
  // filesystem the second save of such a key fails with StorageWriteError (ENAMETOOLONG) instead
  // of getting a free name.
  it('keeps the segment within 255 bytes even when the extension is long', () => {
    const key = `a.${'b'.repeat(249)}`; // a valid 251-byte segment
    expect(validateKey(key)).toBe(key);
    const name = alternativeName(key);
    expect(bytes(name)).toBeLessThanOrEqual(MAX_SEGMENT_BYTES);
    expect(validateKey(name)).toBe(name);
  });

  // Regression (was a bug): the suffix adds 8 bytes with no check against the 1024-byte key limit. The filesystem
  // storage then saves the second copy of a 1024-byte key under a 1032-byte key that its own
  // open(), stat() and delete() refuse with InvalidKeyError.
  it('keeps a 1024-byte key within 1024 bytes', () => {
    const segment = 'x'.repeat(200);
    const key = `${segment}/${segment}/${segment}/${segment}/${'y'.repeat(1024 - 804 - 4)}.txt`;
    expect(bytes(key)).toBe(MAX_KEY_BYTES);
    const name = alternativeName(key);
    expect(bytes(name)).toBeLessThanOrEqual(MAX_KEY_BYTES);
    expect(validateKey(name)).toBe(name);
  });
});

describe('encodeKeyForUrl', () => {
  it.each([
    ['u/a file #1?.txt', 'u/a%20file%20%231%3F.txt'],
    ["!'()*.txt", '%21%27%28%29%2A.txt'],
    ['uploads/2026/报告.pdf', 'uploads/2026/%E6%8A%A5%E5%91%8A.pdf'],
    ['Ünï/résumé.pdf', '%C3%9Cn%C3%AF/r%C3%A9sum%C3%A9.pdf'],
    ['a+b&c=d;e,f$g@h:i.txt', 'a%2Bb%26c%3Dd%3Be%2Cf%24g%40h%3Ai.txt'],
    ['100%.txt', '100%25.txt'],
    ['keep-this_one.~txt', 'keep-this_one.~txt'],
  ])('encodes %j as %j, keeping "/"', (key, encoded) => {
    expect(encodeKeyForUrl(key)).toBe(encoded);
  });

  it('gives a path a URL parser keeps as is and that decodes back to the key', () => {
    const key = "отчёты/报告 2026/a #1?&=!'()*%.pdf";
    const encoded = encodeKeyForUrl(key);
    const url = new URL(`/media/${encoded}`, 'https://cdn.example.com');
    expect(url.pathname).toBe(`/media/${encoded}`);
    expect(url.search).toBe('');
    expect(url.hash).toBe('');
    expect(encoded.split('/').map(decodeURIComponent).join('/')).toBe(key);
  });
});

describe('attachmentDisposition', () => {
  const parse = (header: string): { fallback: string; encoded: string } => {
    const match = /^attachment; filename="([^"]*)"; filename\*=UTF-8''(\S+)$/u.exec(header);
    expect(match, header).not.toBeNull();
    return { fallback: match?.[1] ?? '', encoded: match?.[2] ?? '' };
  };

  it('gives a plain ASCII name in both forms', () => {
    expect(attachmentDisposition('report.pdf')).toBe(`attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`);
  });

  it('gives an ASCII fallback and the exact Unicode name in filename*', () => {
    expect(attachmentDisposition('报告 2026.pdf')).toBe(
      `attachment; filename="__ 2026.pdf"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%202026.pdf`,
    );
    expect(parse(attachmentDisposition('📄.pdf')).fallback).toBe('_.pdf');
  });

  it('neutralises quotes, backslashes and percent signs in the fallback', () => {
    const name = 'say "hi"\\ 100%.txt';
    const { fallback, encoded } = parse(attachmentDisposition(name));
    expect(fallback).toBe('say _hi__ 100_.txt');
    expect(decodeURIComponent(encoded)).toBe(name);
  });

  it("percent-encodes ' ( ) * in filename*, which RFC 5987 does not allow bare", () => {
    const name = "it's (1)*.txt";
    const { encoded } = parse(attachmentDisposition(name));
    expect(encoded).toBe('it%27s%20%281%29%2A.txt');
    expect(decodeURIComponent(encoded)).toBe(name);
  });

  it('cannot inject a header line, and is a valid header value', () => {
    const name = 'a\r\nSet-Cookie: x=1\u0000.txt';
    const header = attachmentDisposition(name);
    for (const char of ['\r', '\n', '\u0000']) expect(header).not.toContain(char);
    expect(parse(header).fallback).toBe('a__Set-Cookie: x=1_.txt');
    expect(decodeURIComponent(parse(header).encoded)).toBe(name);
    expect(() => validateHeaderValue('content-disposition', header)).not.toThrow();
    expect(() => validateHeaderValue('content-disposition', attachmentDisposition('Ünïcödé 报告.pdf'))).not.toThrow();
  });
});
