import { randomBytes } from 'node:crypto';
import mime from 'mime-types';

/**
 * Types that browsers run or render inline (HTML, SVG, XML, JavaScript). Files of these types
 * are stored with `Content-Disposition: attachment` and their URLs force a download, so that a
 * shared link cannot become stored XSS (see GHSA-ch8j-vr4r-qf6h on presigned MinIO URLs).
 */
export const DEFAULT_ATTACHMENT_TYPES: readonly string[] = [
  'text/html',
  'image/svg+xml',
  'application/xhtml+xml',
  'text/xml',
  'application/xml',
  'text/javascript',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'text/ecmascript',
];

/** Options of the UploadService. */
export interface UploadServiceOptions {
  /**
   * Largest accepted file, in bytes; enforced while streaming.
   * @default 52428800 (50 MiB)
   */
  maxSizeBytes?: number;
  /**
   * Accepted content types, exact (`image/png`) or by family (`image/*`); `null` accepts any.
   * @default null
   */
  allowedTypes?: readonly string[] | null;
  /**
   * Directory of new keys; `%Y`, `%m`, `%d`, `%H` are the UTC year, month, day and hour of the clock.
   * @default 'uploads/%Y/%m/'
   */
  keyTemplate?: string;
  /**
   * How long files live before cleanup deletes them.
   * @default 24
   */
  ttlHours?: number;
  /**
   * How long before expiry `notifyExpiringFiles` emits `file.expiring`.
   * @default 1
   */
  expiryNotifyHours?: number;
  /**
   * Types stored as attachments and downloaded, never shown inline.
   * @default DEFAULT_ATTACHMENT_TYPES
   */
  attachmentTypes?: readonly string[];
  /**
   * Lifetime of a direct upload's presigned URLs, in seconds (1 to 604800). The upload may be
   * completed until 15 minutes after they expire; then it is failed (`expired`).
   * @default 3600
   */
  directUploadExpiresIn?: number;
  /**
   * Direct uploads from this size up use multipart (on storages that have it), unless the
   * caller picks a method.
   * @default 104857600 (100 MiB)
   */
  multipartThreshold?: number;
  /**
   * How `completeDirectUpload()` proves the bytes. `read`: it reads the object back once and
   * computes its SHA-256 (and its MD5, when one was declared that no MD5 ETag proves), whatever
   * the server checked. `etag`: when the client declared both `md5` and `sha256`, and the
   * object's ETag is the MD5 of its bytes (a single PUT or POST; not multipart, not SSE-KMS)
   * and equals the declared one, nothing is read: the server checked the bytes against that
   * MD5, and the record and its `file.stored` event carry the declared SHA-256. Any other
   * upload is read as with `read`.
   * @default 'read'
   */
  directUploadVerify?: 'read' | 'etag';
}

export const DEFAULT_MAX_SIZE_BYTES = 52428800;

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/u;

/**
 * The content type of an upload. The rule: the extension decides (`mime-types`, as the seed
 * does), and a declared type that contradicts it is ignored, because the client controls it
 * and browsers trust it. Only when the extension says nothing is a well-formed declared type
 * used; otherwise `application/octet-stream`.
 */
export function uploadContentType(filename: string, declared?: string): string {
  const fromExtension = mime.lookup(filename);
  if (fromExtension !== false) return fromExtension;
  const cleaned = declared?.split(';')[0]?.trim().toLowerCase();
  return cleaned !== undefined && MEDIA_TYPE.test(cleaned) ? cleaned : 'application/octet-stream';
}

/** The directory of the key template at `now`, in UTC. */
export function renderKeyTemplate(template: string, now: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return template
    .replaceAll('%Y', String(now.getUTCFullYear()))
    .replaceAll('%m', pad(now.getUTCMonth() + 1))
    .replaceAll('%d', pad(now.getUTCDate()))
    .replaceAll('%H', pad(now.getUTCHours()));
}

/** A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; sorts by time. */
export function uuidv7(now: Date = new Date()): string {
  const bytes = randomBytes(16);
  const ms = BigInt(now.getTime());
  for (let i = 0; i < 6; i += 1) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
