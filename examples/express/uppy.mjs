// Uppy's @uppy/aws-s3 (v6) against this app: the plugin asks a `signRequest(request)` function
// for a URL per S3 request it makes, and sends the request there. public/uppy-signer.js is
// that function; it asks POST /uppy/sign, which answers:
//
//   PutObject (one PUT)            → createDirectUpload(); the presigned PUT to the storage
//   CreateMultipartUpload          → createDirectUpload() as multipart; a URL on this app that
//                                    answers S3's XML with the file id as the UploadId
//   UploadPart                     → the presigned part PUT to the storage (its size is signed)
//   ListParts                      → a URL on this app that answers S3's ListPartsResult
//   CompleteMultipartUpload        → a URL on this app that completes the upload: checks the
//                                    object, then `stored` with its file.stored event
//   AbortMultipartUpload           → a URL on this app that aborts it
//
// So the bytes go to the storage, and every step that changes the record goes through this
// app: Uppy never holds credentials, never chooses the key, and cannot complete an upload the
// app has not checked. A single PUT is completed by the page after Uppy's upload-success
// (POST /uploads/:id/complete, as without Uppy).
import express from 'express';
import { HttpError } from './http-error.mjs';
import { STATUS_OF_CODE } from './uploads.mjs';

const json = express.json({ limit: '16kb' });
const xmlText = (value) => String(value).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
const xml = (res, status, body) => res.status(status).type('application/xml').send(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);

/** An S3-style error body, which Uppy's client reads for its message. */
const xmlError = (res, status, code, message) => xml(res, status, `<Error><Code>${xmlText(code)}</Code><Message>${xmlText(message)}</Message></Error>`);

/**
 * @param {{ uploads: import('@doorito/storage').UploadService, store: { repository: import('@doorito/storage').UploadRepository }, directError: (error: unknown) => unknown }} deps
 */
export function uppyRoutes({ uploads, store, directError }) {
  const router = express.Router();
  const id = (value) => encodeURIComponent(String(value));

  /** The first request of an upload: the record, claimed key and presigned target. */
  async function start(request, file, method) {
    if (file === null || typeof file !== 'object' || typeof file.name !== 'string' || !Number.isSafeInteger(file.size)) {
      throw new HttpError(400, 'bad_request', 'Send { request, file: { name, size, type } } for the first request of an upload.');
    }
    const type = typeof file.type === 'string' && file.type !== '' ? file.type : request.contentType;
    const { file: record, upload } = await uploads.createDirectUpload({
      filename: file.name,
      size: file.size,
      ...(typeof type === 'string' && type !== '' ? { contentType: type } : {}),
      method,
    });
    if (upload === undefined) throw new HttpError(STATUS_OF_CODE[record.errorCode] ?? 400, record.errorCode, record.errorMessage);
    return { record, upload };
  }

  router.post('/uppy/sign', json, async (req, res, next) => {
    try {
      const { request, file } = req.body ?? {};
      if (request === null || typeof request !== 'object' || typeof request.method !== 'string') {
        throw new HttpError(400, 'bad_request', "Send { request } as Uppy's signRequest() received it.");
      }
      const { method, uploadId, partNumber } = request;
      res.set('Cache-Control', 'no-store');
      if (uploadId === undefined && method === 'PUT') {
        const { record, upload } = await start(request, file, 'put');
        // Uppy sends these headers (Content-Type, and Content-Disposition where it was signed).
        return res.json({ url: upload.url, headers: upload.headers, key: record.id });
      }
      if (uploadId === undefined && method === 'POST') {
        const { record } = await start(request, file, 'multipart');
        return res.json({ url: `/uppy/${id(record.id)}/initiate`, key: record.id });
      }
      if (typeof uploadId !== 'string' || uploadId === '') throw new HttpError(400, 'bad_request', `No upload to ${method}: this app signs uploads only.`);
      if (method === 'PUT' && Number.isSafeInteger(partNumber)) {
        const [part] = await uploads.presignDirectUploadParts(uploadId, [partNumber]);
        return res.json({ url: part.url, headers: part.headers });
      }
      if (method === 'GET') return res.json({ url: `/uppy/${id(uploadId)}/parts` });
      if (method === 'POST') return res.json({ url: `/uppy/${id(uploadId)}/complete` });
      if (method === 'DELETE') return res.json({ url: `/uppy/${id(uploadId)}/abort` });
      throw new HttpError(400, 'bad_request', `Cannot sign ${method} of an upload.`);
    } catch (error) {
      next(directError(error));
    }
  });

  // The control requests of a multipart upload, answered as S3 answers them.
  const s3 = (handler) => async (req, res) => {
    try {
      await handler(req, res);
    } catch (error) {
      const http = directError(error);
      const status = http instanceof HttpError ? http.status : 500;
      xmlError(res, status, http instanceof HttpError ? http.code : 'InternalError', status === 500 ? 'The upload could not be handled; try again.' : http.message);
    }
  };

  router.post(
    '/uppy/:id/initiate',
    s3(async (req, res) => {
      const file = await store.repository.getFile(req.params.id);
      if (file?.directUpload?.method !== 'multipart' || file.status !== 'uploading') return xmlError(res, 404, 'NoSuchUpload', 'No such multipart upload.');
      xml(res, 200, `<InitiateMultipartUploadResult><Key>${xmlText(file.id)}</Key><UploadId>${xmlText(file.id)}</UploadId></InitiateMultipartUploadResult>`);
    }),
  );

  router.get(
    '/uppy/:id/parts',
    s3(async (req, res) => {
      const parts = await uploads.listDirectUploadParts(req.params.id);
      const items = parts.map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${xmlText(p.etag)}</ETag><Size>${p.size}</Size></Part>`);
      xml(res, 200, `<ListPartsResult><Key>${xmlText(req.params.id)}</Key><UploadId>${xmlText(req.params.id)}</UploadId>${items.join('')}</ListPartsResult>`);
    }),
  );

  // Uppy sends its list of part ETags; the app lists the parts itself and checks the object.
  router.post(
    '/uppy/:id/complete',
    s3(async (req, res) => {
      req.resume();
      const file = await uploads.completeDirectUpload(req.params.id);
      if (file.status === 'failed') return xmlError(res, 422, file.errorCode ?? 'failed', file.errorMessage ?? 'The upload failed its checks.');
      const url = await uploads.getFileUrl(file.id);
      xml(
        res,
        200,
        `<CompleteMultipartUploadResult><Location>${xmlText(url.url)}</Location><Key>${xmlText(file.id)}</Key></CompleteMultipartUploadResult>`,
      );
    }),
  );

  router.delete(
    '/uppy/:id/abort',
    s3(async (req, res) => {
      await uploads.abortDirectUpload(req.params.id);
      res.status(204).end();
    }),
  );

  return router;
}
