/**
 * The host app's side of a signed upload URL (filesystem, memory), as a real HTTP route: PUT
 * requests under `/media/` go to the storage's `receiveUpload()`, refusals are answered with
 * their status, as the docs tell apps to do.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isSignedUploadError, type PresignedUpload, type SaveResult, type SignedUploadRequest } from '../../src/index.js';

export interface UploadRoute {
  /** `http://127.0.0.1:<port>/media/`: give it to the storage as its `baseUrl`. */
  baseUrl: string;
  /** Set the storage the route hands requests to. */
  use(storage: { receiveUpload(request: SignedUploadRequest): Promise<SaveResult> }): void;
  close(): Promise<void>;
}

export async function startUploadRoute(): Promise<UploadRoute> {
  let target: { receiveUpload(request: SignedUploadRequest): Promise<SaveResult> } | undefined;
  const server: Server = createServer((req: IncomingMessage, res) => {
    if (target === undefined || !(req.url ?? '').startsWith('/media/')) {
      res.writeHead(404).end();
      return;
    }
    target.receiveUpload({ url: req.url ?? '', method: req.method ?? 'GET', headers: req.headers, body: req }).then(
      (saved) => res.writeHead(200, { ETag: saved.etag ?? '' }).end(),
      (error: unknown) => {
        const status = isSignedUploadError(error) ? error.status : 500;
        res.writeHead(status, { Connection: 'close' }).end(error instanceof Error ? error.message : String(error));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/media/`,
    use: (storage) => {
      target = storage;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Send an upload over HTTP (to S3 or to an upload route); the status. */
export async function fetchUpload(upload: PresignedUpload, body: Buffer): Promise<number> {
  const response = await fetch(upload.url, { method: upload.method, headers: upload.headers, body });
  await response.arrayBuffer();
  return response.status;
}

/** Hand an upload straight to `receiveUpload()` (memory); the status the route would answer. */
export async function receiveUploadStatus(
  storage: { receiveUpload(request: SignedUploadRequest): Promise<SaveResult> },
  upload: PresignedUpload,
  body: Buffer,
): Promise<number> {
  try {
    await storage.receiveUpload({ url: upload.url, method: upload.method, headers: { ...upload.headers, 'content-length': String(body.length) }, body });
    return 200;
  } catch (error) {
    if (isSignedUploadError(error)) return error.status;
    throw error;
  }
}
