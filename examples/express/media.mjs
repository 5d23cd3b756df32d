// GET /media/<key>: local files in development, read through the Storage interface (so the
// storage's own key checks refuse traversal), with Range support. In production the URLs point
// at S3 (or a CDN) and this route is not mounted.
import { pipeline } from 'node:stream/promises';
import { DEFAULT_ATTACHMENT_TYPES, validateKey } from '@doorito/storage';
import { HttpError } from './http-error.mjs';

const SCRIPT_CAPABLE = new Set(DEFAULT_ATTACHMENT_TYPES);

/**
 * The byte range of a `Range` header: `{ start, end }` (inclusive), `null` for the whole file
 * (no header, several ranges, or another unit), or `'unsatisfiable'`.
 */
export function parseRange(header, size) {
  if (header === undefined) return null;
  const match = /^bytes=(\d*)-(\d*)$/u.exec(header.trim());
  // Several ranges or another unit: answering with the whole file is allowed (RFC 9110 §14.2).
  if (match === null) return null;
  const [, first, last] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return null;
  return { start, end };
}

/** `attachment…` from the URL (the storage signs downloads this way), never an upgrade to inline. */
function dispositionFrom(query, contentType) {
  const asked = query['response-content-disposition'];
  if (typeof asked === 'string' && /^attachment(;|$)/u.test(asked) && !/[\r\n]/u.test(asked)) return asked;
  return SCRIPT_CAPABLE.has(contentType) ? 'attachment' : undefined;
}

export function serveMedia({ storage }) {
  return async (req, res) => {
    const key = [req.params.key].flat().join('/');
    try {
      validateKey(key);
    } catch {
      throw new HttpError(400, 'invalid_key', 'That is not a valid file path.');
    }
    const stat = await storage.stat(key);
    const disposition = dispositionFrom(req.query, stat.contentType);
    res.set({
      'Content-Type': stat.contentType,
      'Accept-Ranges': 'bytes',
      'Last-Modified': stat.lastModified.toUTCString(),
      'Cache-Control': 'private, max-age=0',
    });
    if (disposition !== undefined) res.set('Content-Disposition', disposition);

    const range = parseRange(req.get('range'), stat.size);
    if (range === 'unsatisfiable') {
      res.status(416).set('Content-Range', `bytes */${stat.size}`).end();
      return;
    }
    if (range !== null) {
      res.status(206).set('Content-Range', `bytes ${range.start}-${range.end}/${stat.size}`);
      res.set('Content-Length', String(range.end - range.start + 1));
    } else {
      res.status(200).set('Content-Length', String(stat.size));
    }
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const body = await storage.open(key, range === null ? {} : { range });
    // A client that goes away stops the read (pipeline destroys both sides).
    await pipeline(body, res).catch(() => undefined);
  };
}
