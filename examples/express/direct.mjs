// Direct uploads: the browser sends the bytes to the storage itself (S3: a presigned PUT, a
// presigned POST form, or presigned multipart parts), and this app only signs and checks. The
// routes map one to one onto the functions of Uppy 5's @uppy/aws-s3 (Uppy 6: uppy.mjs):
//
//   POST   /uploads/direct              { filename, size, content_type?, md5?, sha256?, method? } → the record and where to send the bytes
//   POST   /uploads/:id/parts           { part_numbers: [1, 2, …] }  → presigned part PUTs (multipart)
//   GET    /uploads/:id/parts           → the parts that arrived (to resume)
//   POST   /uploads/:id/complete        → checks the object, then `stored` with its file.stored event
//   DELETE /uploads/:id/direct          → aborts: the record is failed, what arrived removed
//
// On the filesystem, PUT /media/<key> is the "presigned" target: the storage's own signed URL,
// checked by storage.receiveUpload().
import express from 'express';
import { isDirectUploadExpiredError, isDirectUploadIncompleteError, isSignedUploadError, isStorageConfigError } from '@doorito/storage';
import { HttpError } from './http-error.mjs';
import { fileJson } from './files.mjs';
import { STATUS_OF_CODE } from './uploads.mjs';

const json = express.json({ limit: '64kb' });
const MAX_PARTS_PER_REQUEST = 100;

const uploadJson = (upload) => {
  const expires_at = upload.expiresAt.toISOString();
  if (upload.method === 'PUT') return { method: 'PUT', url: upload.url, headers: upload.headers, expires_at };
  // A plain HTML form: the fields first, then the file as the last field.
  if (upload.method === 'POST') return { method: 'POST', url: upload.url, fields: upload.fields, expires_at };
  return { method: 'multipart', part_size: upload.partSize, part_count: upload.partCount, expires_at };
};

/** The direct-upload errors a client can act on, as HTTP answers. */
export function directError(error) {
  if (isDirectUploadIncompleteError(error)) {
    return new HttpError(409, 'upload_incomplete', error.missingParts.length > 0 ? `Parts ${error.missingParts.join(', ')} have not arrived.` : 'The file has not arrived yet.');
  }
  if (isDirectUploadExpiredError(error)) return new HttpError(410, 'upload_expired', 'The upload expired before it was completed; start again.');
  if (isStorageConfigError(error)) return new HttpError(400, 'bad_request', error.message);
  return error;
}

const wrap = (handler) => async (req, res, next) => {
  try {
    await handler(req, res);
  } catch (error) {
    next(directError(error));
  }
};

export function directUploadRoutes({ uploads, storage, mediaServed }) {
  const router = express.Router();

  router.post(
    '/uploads/direct',
    json,
    wrap(async (req, res) => {
      const { filename, size, content_type: contentType, md5, sha256, method } = req.body ?? {};
      if (typeof filename !== 'string' || !Number.isSafeInteger(size)) {
        throw new HttpError(400, 'bad_request', 'Send { filename, size } as JSON (size in bytes), and optionally content_type, md5 (base64), sha256 (hex).');
      }
      const { file, upload } = await uploads.createDirectUpload({
        filename,
        size,
        ...(typeof contentType === 'string' ? { contentType } : {}),
        ...(typeof md5 === 'string' ? { md5 } : {}),
        ...(typeof sha256 === 'string' ? { sha256 } : {}),
        ...(method === 'put' || method === 'post' || method === 'multipart' ? { method } : {}),
      });
      if (upload === undefined) {
        res.status(STATUS_OF_CODE[file.errorCode] ?? 400).json({ code: file.errorCode, message: file.errorMessage, file: fileJson(file) });
        return;
      }
      res.status(201).json({ file: fileJson(file), upload: uploadJson(upload) });
    }),
  );

  router.post(
    '/uploads/:id/parts',
    json,
    wrap(async (req, res) => {
      const numbers = req.body?.part_numbers;
      if (!Array.isArray(numbers) || numbers.length === 0 || numbers.length > MAX_PARTS_PER_REQUEST || !numbers.every(Number.isSafeInteger)) {
        throw new HttpError(400, 'bad_request', `Send { part_numbers: [1, 2, …] }, up to ${MAX_PARTS_PER_REQUEST} per request.`);
      }
      const parts = await uploads.presignDirectUploadParts(req.params.id, numbers);
      res.set('Cache-Control', 'no-store');
      res.json({
        parts: parts.map((p) => ({ part_number: p.partNumber, size: p.size, url: p.url, headers: p.headers, expires_at: p.expiresAt.toISOString() })),
      });
    }),
  );

  router.get(
    '/uploads/:id/parts',
    wrap(async (req, res) => {
      const parts = await uploads.listDirectUploadParts(req.params.id);
      res.set('Cache-Control', 'no-store');
      res.json({ parts: parts.map((p) => ({ part_number: p.partNumber, size: p.size, etag: p.etag })) });
    }),
  );

  router.post(
    '/uploads/:id/complete',
    wrap(async (req, res) => {
      const file = await uploads.completeDirectUpload(req.params.id);
      if (file.status === 'failed') {
        res.status(422).json({ code: file.errorCode, message: file.errorMessage, file: fileJson(file) });
        return;
      }
      const url = await uploads.getFileUrl(file.id);
      res.json({ ...fileJson(file), url: url.url, url_expires_at: url.expiresAt?.toISOString() ?? null });
    }),
  );

  router.delete(
    '/uploads/:id/direct',
    wrap(async (req, res) => {
      const file = await uploads.abortDirectUpload(req.params.id);
      res.json(fileJson(file));
    }),
  );

  // The filesystem's signed upload URLs land here (S3's go to S3).
  if (mediaServed) {
    router.put('/media/*key', async (req, res, next) => {
      try {
        const saved = await storage.receiveUpload({ url: req.originalUrl, method: req.method, headers: req.headers, body: req });
        res.set('ETag', saved.etag ?? '').status(200).end();
      } catch (error) {
        if (!isSignedUploadError(error)) return next(error);
        // The body may be unread: answer, and close the connection rather than read it all.
        res.status(error.status).set('Connection', 'close').json({ code: 'upload_refused', message: error.message });
      }
    });
  }

  return router;
}
