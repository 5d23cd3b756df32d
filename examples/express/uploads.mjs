// POST /uploads: multipart/form-data parsed as a stream with busboy. Each file part goes
// straight into UploadService.createUploadFile: never buffered whole, never written to a temp
// file. The files of one request form a batch, finalized at the end.
import { PassThrough } from 'node:stream';
import busboy from 'busboy';
import { isStorageAbortedError } from '@doorito/storage';

/** HTTP status of each UploadService refusal. */
export const STATUS_OF_CODE = { file_too_large: 413, file_type_not_allowed: 415, invalid_filename: 400 };
const MAX_FILES = 20;
/** How long a refused request's connection stays open (not read from) so the client can read the answer. */
const CLOSE_GRACE_MS = 500;

const failure = (code, message) => ({ code, message });

export function receiveUploads({ uploads }) {
  return (req, res) => {
    let parser;
    try {
      parser = busboy({
        headers: req.headers,
        // Browsers send UTF-8 filenames as raw bytes; busboy assumes latin1 unless told.
        defParamCharset: 'utf8',
        limits: { files: MAX_FILES, fields: 20, fieldSize: 8 * 1024, parts: MAX_FILES + 20, headerPairs: 100 },
      });
    } catch {
      res.status(400).json({ code: 'bad_form', message: 'Send the files as multipart/form-data.' });
      return;
    }

    const results = [];
    const abort = new AbortController();
    let chain = Promise.resolve();
    let batch;
    let stopped = false;
    let formError;
    let tooManyFiles = false;
    let answered = false;

    // The client went away mid-request: abort the upload in flight (the service cleans up).
    // (Not req's 'close': it also fires once the body has been read, while storing goes on.)
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new Error('client disconnected'));
    });

    const stopReading = () => {
      stopped = true;
      req.unpipe(parser);
      req.pause();
    };

    const answer = async () => {
      if (answered) return;
      answered = true;
      await chain;
      if (batch !== undefined) await uploads.finalizeBatch((await batch).id).catch(() => undefined);
      const stored = results.filter((r) => r.status === 'stored');
      const firstFailure = results.find((r) => r.error !== null)?.error;
      let status = 201;
      let code;
      if (formError !== undefined) [status, code] = [400, 'bad_form'];
      else if (results.length === 0) [status, code] = [400, 'no_files'];
      else if (stored.length === 0) [status, code] = [STATUS_OF_CODE[firstFailure.code] ?? 500, firstFailure.code];
      else if (tooManyFiles) code = 'too_many_files';
      const body = { batch_id: batch === undefined ? null : (await batch).id, files: results };
      if (code !== undefined) Object.assign(body, { code, message: messageOf(code, firstFailure) });
      if (!stopped) {
        res.status(status).json(body);
        return;
      }
      // The rest of the body is never read. Closing at once would reset the connection, and a
      // reset makes the client's kernel drop our answer unread; so the answer goes out whole
      // (Content-Length), and the connection closes a moment later.
      const json = JSON.stringify(body);
      res.status(status).set({ 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(json)), Connection: 'close' });
      res.write(json);
      setTimeout(() => res.end(), CLOSE_GRACE_MS).unref();
    };

    parser.on('file', (field, stream, info) => {
      if (stopped) {
        stream.resume();
        return;
      }
      const content = new PassThrough();
      stream.pipe(content);
      // pipe() does not forward errors: a broken form must fail the upload, not hang it.
      stream.on('error', (error) => content.destroy(error));
      // The service sees that error through its own pipeline; this listener only keeps a part
      // that is not being read yet (queued behind another file) from crashing the process.
      content.on('error', () => undefined);
      const filename = info.filename ?? '';
      chain = chain.then(() => storeOne(stream, content, info, filename)).catch((error) => {
        // The batch could not be created (the database is down, …).
        console.error(`[uploads] ${error instanceof Error ? error.message : String(error)}`);
        results.push({ filename, id: null, status: 'failed', url: null, error: failure('upload_failed', 'The file could not be stored.') });
        stream.resume();
      });
    });

    const storeOne = async (stream, content, info, filename) => {
      batch ??= uploads.createBatch(req.get('idempotency-key') ? { idempotencyKey: String(req.get('idempotency-key')) } : {});
      const { id: batchId } = await batch;
      try {
        const file = await uploads.createUploadFile({ content, filename, contentType: info.mimeType, batchId, signal: abort.signal });
        const url = file.status === 'stored' ? (await uploads.getFileUrl(file.id)).url : null;
        results.push({
          filename,
          id: file.id,
          status: file.status,
          content_type: file.contentType,
          size_bytes: file.sizeBytes,
          sha256: file.sha256,
          url,
          error: file.status === 'failed' ? failure(file.errorCode, file.errorMessage) : null,
        });
        if (file.errorCode === 'file_too_large') {
          stopReading();
          void respond();
          return;
        }
      } catch (error) {
        const aborted = isStorageAbortedError(error);
        if (!aborted) console.error(`[uploads] ${error instanceof Error ? error.message : String(error)}`);
        results.push({ filename, id: null, status: 'failed', url: null, error: failure(aborted ? 'aborted' : 'upload_failed', 'The file could not be stored.') });
      }
      // Refused before its bytes were read (bad name or type): skip the rest of this part.
      if (!stream.readableEnded) {
        stream.unpipe(content);
        stream.resume();
      }
    };
    parser.on('filesLimit', () => {
      tooManyFiles = true;
    });
    const respond = () =>
      answer().catch((error) => {
        console.error(`[uploads] ${error instanceof Error ? error.message : String(error)}`);
        if (!res.headersSent) res.status(500).json({ code: 'internal_error', message: 'Something went wrong on our side.' });
      });
    parser.on('error', (error) => {
      formError = error;
      stopReading();
      void respond();
    });
    parser.on('close', () => void respond());
    req.pipe(parser);
  };
}

function messageOf(code, firstFailure) {
  switch (code) {
    case 'bad_form':
      return 'The multipart form is malformed.';
    case 'no_files':
      return 'The form has no file in it.';
    case 'too_many_files':
      return `Only the first ${MAX_FILES} files of a request are taken.`;
    default:
      return firstFailure?.message ?? 'The upload failed.';
  }
}
