/**
 * Key and filename rules, in one place. Every Storage validates keys here before it touches
 * anything, so a hostile key is refused the same way by every backend.
 */
import { randomInt } from 'node:crypto';
import { InvalidKeyError } from './errors.js';

/** Longest key, in UTF-8 bytes (S3's own limit). */
export const MAX_KEY_BYTES = 1024;
/** Longest segment, in UTF-8 bytes (most filesystems' NAME_MAX). */
export const MAX_SEGMENT_BYTES = 255;
/**
 * Segments starting with this (in any case) are the storages' own: the filesystem's temp files
 * are `.doorito-<16 chars>.tmp`. No key may have one, so no user's file can be mistaken for
 * a temp file (hidden from `list()`, deleted by the temp sweep).
 */
export const RESERVED_SEGMENT_PREFIX = '.doorito-';

const isReserved = (segment: string): boolean => segment.toLowerCase().startsWith(RESERVED_SEGMENT_PREFIX);

// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

const byteLength = (value: string): number => Buffer.byteLength(value, 'utf8');

function decodeSegment(segment: string): string | undefined {
  if (!segment.includes('%')) return undefined;
  let current = segment;
  // Decode repeatedly so that double encoding (%252e) cannot hide a dot segment either.
  for (let round = 0; round < 3 && current.includes('%'); round += 1) {
    try {
      const next = decodeURIComponent(current);
      if (next === current) break;
      current = next;
    } catch {
      break;
    }
  }
  return current;
}

function checkSegment(key: string, segment: string): void {
  if (segment === '') throw new InvalidKeyError(key, 'it has an empty segment ("//", or a trailing "/")');
  if (segment === '.' || segment === '..') throw new InvalidKeyError(key, `it has a "${segment}" segment`);
  if (isReserved(segment)) {
    throw new InvalidKeyError(key, `a segment starts with "${RESERVED_SEGMENT_PREFIX}", which is reserved for the storage's temp files`);
  }
  if (byteLength(segment) > MAX_SEGMENT_BYTES) {
    throw new InvalidKeyError(key, `a segment is longer than ${MAX_SEGMENT_BYTES} UTF-8 bytes`);
  }
  const decoded = decodeSegment(segment);
  if (decoded !== undefined) {
    if (isReserved(decoded)) throw new InvalidKeyError(key, `a segment percent-decodes to the reserved "${RESERVED_SEGMENT_PREFIX}" prefix`);
    if (decoded === '.' || decoded === '..') {
      throw new InvalidKeyError(key, `a segment percent-decodes to "${decoded}"`);
    }
    if (decoded.includes('/') || decoded.includes('\\') || CONTROL.test(decoded)) {
      throw new InvalidKeyError(key, 'a segment percent-decodes to a separator or a control character');
    }
  }
}

/**
 * Check a storage key and return it unchanged, or throw {@link InvalidKeyError}.
 *
 * Rules: `/`-separated; no leading `/`; no empty, `.` or `..` segments, and none starting with
 * `.doorito-` (reserved for temp files) (also not behind percent-encoding); no NUL, control characters or backslashes; at most 1024 UTF-8 bytes in
 * all and 255 per segment. Unicode letters are welcome.
 *
 * @example
 * validateKey('uploads/2026/11/report.pdf') // 'uploads/2026/11/report.pdf'
 * validateKey('../etc/passwd')             // throws InvalidKeyError
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string') throw new InvalidKeyError(String(key), 'it is not a string');
  if (key === '') throw new InvalidKeyError(key, 'it is empty');
  if (CONTROL.test(key)) throw new InvalidKeyError(key, 'it contains a NUL or control character');
  if (key.includes('\\')) throw new InvalidKeyError(key, 'it contains a backslash');
  if (key.startsWith('/')) throw new InvalidKeyError(key, 'it starts with "/" (keys are relative)');
  if (key.isWellFormed !== undefined && !key.isWellFormed()) {
    throw new InvalidKeyError(key, 'it contains a lone UTF-16 surrogate');
  }
  if (byteLength(key) > MAX_KEY_BYTES) throw new InvalidKeyError(key, `it is longer than ${MAX_KEY_BYTES} UTF-8 bytes`);
  for (const segment of key.split('/')) checkSegment(key, segment);
  return key;
}

/**
 * Check a listing prefix: `''` (everything) or a key-like string; a trailing `/` is allowed.
 */
export function validatePrefix(prefix: string): string {
  if (prefix === '') return prefix;
  validateKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}

/** Split `dir/name.ext` into `dir/`, `name` and `.ext`, like Python's `os.path.splitext`. */
export function splitKey(key: string): { dir: string; stem: string; ext: string } {
  const slash = key.lastIndexOf('/');
  const dir = key.slice(0, slash + 1);
  const base = key.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  // A leading dot is part of the stem (".env" has no extension), as in os.path.splitext.
  if (dot <= 0 || /^\.+$/u.test(base.slice(0, dot))) return { dir, stem: base, ext: '' };
  return { dir, stem: base.slice(0, dot), ext: base.slice(dot) };
}

/** Cut a string to at most `maxBytes` UTF-8 bytes without splitting a character. */
export function truncateBytes(value: string, maxBytes: number): string {
  if (byteLength(value) <= maxBytes) return value;
  let out = '';
  let used = 0;
  for (const char of value) {
    const size = byteLength(char);
    if (used + size > maxBytes) break;
    out += char;
    used += size;
  }
  return out;
}

const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A random string of `length` characters from `[a-zA-Z0-9]`, like Django's `get_random_string`. */
export function randomSuffix(length = 7): string {
  let out = '';
  for (let i = 0; i < length; i += 1) out += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return out;
}

/**
 * The next name to try when `key` is taken: `<stem>_<7 random [a-zA-Z0-9]><ext>` in the same
 * directory (Django's `get_available_name`). The stem is shortened if the segment would
 * otherwise pass 255 bytes.
 *
 * @example
 * alternativeName('uploads/report.pdf') // e.g. 'uploads/report_aB3dE9x.pdf'
 */
export function alternativeName(key: string): string {
  const { dir, stem, ext } = splitKey(key);
  const suffix = `_${randomSuffix(7)}`;
  // Room for stem + ext within both the segment and the whole-key limits.
  const room = Math.min(MAX_SEGMENT_BYTES, MAX_KEY_BYTES - byteLength(dir)) - byteLength(suffix);
  if (room < 1) {
    throw new InvalidKeyError(key, 'it is too long to take a "_<7 chars>" suffix when the name is taken; use a shorter name');
  }
  let keptStem = stem;
  let keptExt = ext;
  if (byteLength(stem) + byteLength(ext) > room) {
    // Shorten the stem first; cut the extension only when it alone leaves no room.
    if (byteLength(ext) > room - 1) keptExt = truncateBytes(ext, room - 1);
    keptStem = truncateBytes(stem, room - byteLength(keptExt));
  }
  return `${dir}${keptStem}${suffix}${keptExt}`;
}

/** Options of {@link getValidName}. */
export interface ValidNameOptions {
  /**
   * Longest result, in UTF-8 bytes. Longer names are shortened and keep their extension.
   * @default 200 (leaves room for the 8-character suffix that de-duplication adds)
   */
  maxBytes?: number;
}

/**
 * Turn a user-supplied filename into a safe single-segment name (Django's `get_valid_name`).
 *
 * It drops any directory part (`/` or `\`), trims, turns spaces into `_`, and drops every
 * character other than Unicode letters, digits, marks, `-`, `_` and `.`. An empty result,
 * `.` or `..` throws {@link InvalidKeyError}. Overlong names are shortened, keeping the extension.
 *
 * @example
 * getValidName('C:\\Users\\me\\My Report (final).pdf') // 'My_Report_final.pdf'
 * getValidName('报告 2026.pdf')                         // '报告_2026.pdf'
 */
export function getValidName(filename: string, options: ValidNameOptions = {}): string {
  const maxBytes = Math.min(options.maxBytes ?? 200, MAX_SEGMENT_BYTES);
  const base = String(filename).normalize('NFC').split(/[/\\]/u).pop() ?? '';
  const cleaned = base.trim().replace(/\s/gu, '_').replace(/[^\p{L}\p{N}\p{M}_.-]/gu, '');
  let name = cleaned;
  if (byteLength(cleaned) > maxBytes) {
    const { stem, ext } = splitKey(cleaned);
    // An absurdly long "extension" is not one worth keeping whole.
    const keptExt = byteLength(ext) > maxBytes / 2 ? '' : ext;
    name = truncateBytes(stem, maxBytes - byteLength(keptExt)) + keptExt;
  }
  if (name === '' || /^\.+$/u.test(name)) {
    throw new InvalidKeyError(filename, 'it has no usable characters once cleaned and shortened');
  }
  return isReserved(name) ? `_${name.slice(1)}` : name;
}

/** Percent-encode each segment of a key for use in a URL path (the `/` stay as they are). */
export function encodeKeyForUrl(key: string): string {
  // encodeURIComponent leaves !'()* alone; S3 (and RFC 3986) want them encoded.
  return encodeURIComponent(key)
    .replace(/%2F/gu, '/')
    .replace(/[!'()*]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
