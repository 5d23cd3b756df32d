// The portal's HTTP routes. Every error answers JSON `{ code, message }`: no stack, no path,
// no secret.
import { fileURLToPath } from 'node:url';
import express from 'express';
import { isInvalidKeyError, isObjectNotFoundError, isUploadNotFoundError, isInvalidTransitionError } from '@doorito/storage';
import { deliveryRoutes } from './deliveries.mjs';
import { HttpError } from './http-error.mjs';
import { serveMedia } from './media.mjs';
import { receiveUploads } from './uploads.mjs';
import { directError, directUploadRoutes } from './direct.mjs';
import { uppyRoutes } from './uppy.mjs';
import { LIVE, fileJson } from './files.mjs';

const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
const STATUSES = new Set(['uploading', 'stored', 'processed', 'failed', 'deleted']);

const encodeCursor = (file) => Buffer.from(`${file.createdAt.getTime()}.${file.id}`).toString('base64url');

function decodeCursor(cursor) {
  const match = /^(\d{1,15})\.([0-9a-f-]{36})$/u.exec(Buffer.from(String(cursor), 'base64url').toString('utf8'));
  if (match === null) throw new HttpError(400, 'bad_cursor', 'The cursor is not one this API gave out.');
  return { createdAt: new Date(Number(match[1])), id: match[2] };
}

export function createApp({ uploads, storage, store, demo, settings, mediaServed, uploadOrigin }) {
  // The page may connect to itself and, for direct uploads, to the storage's origin.
  const connect = uploadOrigin === undefined ? "'self'" : `'self' ${uploadOrigin}`;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    res.set('X-Content-Type-Options', 'nosniff');
    res.set('Referrer-Policy', 'no-referrer');
    next();
  });

  // The page: static files, no build step. Its own script and style only.
  app.use(
    express.static(PUBLIC_DIR, {
      index: 'index.html',
      setHeaders: (res) => res.set('Content-Security-Policy', `default-src 'self'; img-src 'self' data:; connect-src ${connect}; frame-ancestors 'none'`),
    }),
  );

  app.get('/config', (req, res) => {
    res.json({
      max_size_bytes: settings.maxSizeBytes,
      allowed_types: settings.allowedTypes,
      // On S3 the page sends files to the bucket itself; on the filesystem, through this app.
      direct_uploads: storage.multipartUploads !== undefined,
      multipart_threshold: settings.multipartThreshold,
    });
  });

  app.post('/uploads', receiveUploads({ uploads }));
  app.use(directUploadRoutes({ uploads, storage, mediaServed }));
  app.use(uppyRoutes({ uploads, store, directError }));

  app.get('/uploads', async (req, res) => {
    const limit = Math.min(Math.max(Number.parseInt(String(req.query.limit ?? '20'), 10) || 20, 1), 100);
    const statuses = req.query.status === undefined ? LIVE : String(req.query.status).split(',');
    if (!statuses.every((s) => STATUSES.has(s))) throw new HttpError(400, 'bad_status', `status must be among ${[...STATUSES].join(', ')}.`);
    const after = req.query.cursor === undefined ? undefined : decodeCursor(req.query.cursor);
    const files = await store.repository.listFiles({ limit: limit + 1, statuses, ...(after === undefined ? {} : { after }) });
    const page = files.slice(0, limit);
    res.json({ items: page.map(fileJson), next_cursor: files.length > limit ? encodeCursor(page.at(-1)) : null });
  });

  const fileOr404 = async (id) => {
    const file = await store.repository.getFile(id);
    if (file === undefined) throw new HttpError(404, 'not_found', 'No upload has this id.');
    return file;
  };

  app.get('/uploads/:id', async (req, res) => {
    const file = await fileOr404(req.params.id);
    const url = LIVE.includes(file.status) ? await uploads.getFileUrl(file.id) : undefined;
    res.set('Cache-Control', 'no-store');
    res.json({ ...fileJson(file), url: url?.url ?? null, url_expires_at: url?.expiresAt?.toISOString() ?? null });
  });

  app.get('/uploads/:id/download', async (req, res) => {
    const file = await fileOr404(req.params.id);
    if (!LIVE.includes(file.status)) throw new HttpError(404, 'not_found', `This upload is ${file.status}; it has nothing to download.`);
    const { url } = await uploads.getFileUrl(file.id);
    res.set('Cache-Control', 'no-store');
    res.redirect(302, url);
  });

  app.delete('/uploads/:id', async (req, res) => {
    await fileOr404(req.params.id);
    await uploads.markFileDeleted(req.params.id);
    res.status(204).end();
  });

  if (mediaServed) app.get('/media/*key', serveMedia({ storage }));

  app.post('/webhooks/demo', express.raw({ type: () => true, limit: '256kb' }), (req, res) => demo.handle(req, res));
  app.get('/webhooks/demo', (req, res) => {
    res.set('Cache-Control', 'no-store');
    res.json({ deliveries: demo.list() });
  });

  app.use(deliveryRoutes({ store }));

  app.get('/healthz', async (req, res) => {
    const probe = async (fn) => {
      try {
        await fn();
        return 'ok';
      } catch (error) {
        console.error(`[healthz] ${error instanceof Error ? error.message : String(error)}`);
        return 'unavailable';
      }
    };
    const [storageState, databaseState] = await Promise.all([
      probe(() => storage.exists('healthz/probe')),
      probe(() => store.repository.getFile('00000000-0000-7000-8000-000000000000')),
    ]);
    const ok = storageState === 'ok' && databaseState === 'ok';
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', storage: storageState, database: databaseState });
  });

  app.use((req, res) => {
    res.status(404).json({ code: 'not_found', message: 'No such route.' });
  });

  // Errors: known ones by class, the rest as a bare 500. The message of an unknown error stays
  // in the server log (it may name a path); the client gets a code.
  app.use((error, req, res, next) => {
    if (res.headersSent) return next(error);
    let status = 500;
    let code = 'internal_error';
    let message = 'Something went wrong on our side.';
    if (error instanceof HttpError) ({ status, code, message } = error);
    else if (isUploadNotFoundError(error) || isObjectNotFoundError(error)) [status, code, message] = [404, 'not_found', 'Not found.'];
    else if (isInvalidKeyError(error)) [status, code, message] = [400, 'invalid_key', 'That is not a valid file path.'];
    else if (isInvalidTransitionError(error)) [status, code, message] = [409, 'invalid_state', 'The upload is not in a state that allows this.'];
    else if (error?.type === 'entity.too.large') [status, code, message] = [413, 'body_too_large', 'The request body is too large.'];
    else if (typeof error?.status === 'number' && error.status >= 400 && error.status < 500) [status, code, message] = [error.status, 'bad_request', 'The request is malformed.'];
    if (status === 500) console.error(`[portal] ${req.method} ${req.path}: ${error?.name ?? 'Error'}: ${error?.message ?? String(error)}`);
    res.status(status).json({ code, message });
  });

  return app;
}
