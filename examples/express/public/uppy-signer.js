// Uppy (@uppy/core and @uppy/aws-s3, v6) wired to this portal's routes (../uppy.mjs):
//
//   import Uppy from '@uppy/core'
//   import AwsS3 from '@uppy/aws-s3'
//   import { portalAwsS3Options, completeOnSuccess } from './uppy-signer.js'
//
//   const uppy = new Uppy()
//   const config = await (await fetch('/config')).json()
//   uppy.use(AwsS3, portalAwsS3Options(uppy, config))
//   completeOnSuccess(uppy, (file, record) => console.log(file.name, record.status, record.sha256))
//
// The plugin sends the bytes to the storage; the portal creates the record, chooses the key,
// signs each request and checks the object before it is `stored`.

const MiB = 1024 * 1024;

/**
 * The part size the portal signs for a file of `size` bytes (at least 8 MiB, in whole MiB, at
 * most 10,000 parts): `choosePartSize()` of @doorito/storage. Uppy must cut the same parts.
 */
export const portalPartSize = (size) => Math.max(8 * MiB, Math.ceil(size / 10_000 / MiB) * MiB);

async function postJson(url, body) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(answer.message ?? `${url} answered HTTP ${response.status}`), { code: answer.code, status: response.status });
  return answer;
}

/** AwsS3 options for this portal: its `signRequest`, the part size, and when to go multipart. */
export function portalAwsS3Options(uppy, config, { base = '' } = {}) {
  return {
    // Uppy's key is only a handle on the file; the portal answers with the record's id.
    generateObjectKey: (file) => file.id,
    shouldUseMultipart: (file) => (file.size ?? 0) >= config.multipart_threshold,
    getChunkSize: (file) => portalPartSize(file.size),
    signRequest: async (request) => {
      // The first request of an upload names Uppy's file: the portal needs its name, size and type.
      const file = request.uploadId === undefined ? uppy.getFile(request.key) : undefined;
      const described = file === undefined ? {} : { file: { name: file.name, size: file.size, type: file.type } };
      return postJson(`${base}/uppy/sign`, { request, ...described });
    },
  };
}

/**
 * After Uppy's `upload-success`, complete the upload with the portal (a multipart upload was
 * completed already; complete is idempotent and answers the same record), then `onStored`.
 */
export function completeOnSuccess(uppy, onStored, { base = '', onError = (file, error) => uppy.emit('upload-error', file, error) } = {}) {
  uppy.on('upload-success', (file, response) => {
    postJson(`${base}/uploads/${encodeURIComponent(response.body.key)}/complete`, {}).then(
      (record) => onStored(file, record),
      (error) => onError(file, error),
    );
  });
}
