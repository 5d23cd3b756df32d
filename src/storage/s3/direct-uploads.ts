/**
 * Uploads a client sends to S3 itself: a presigned PUT that binds the key, `Content-Type`,
 * `Content-Length` and (when given) `Content-MD5`; and multipart uploads whose parts are each a
 * presigned PUT of an exact size. The app keeps the credentials; the client gets URLs.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { StorageConfigError } from '../../errors.js';
import { DEFAULT_UPLOAD_EXPIRES_IN, MAX_PRESIGN_EXPIRES_IN, checkPresignOptions, uploadHeaders } from '../../signed-upload.js';
import type { CreateMultipartOptions, PresignUploadOptions, PresignedUpload, UploadedPart } from '../../types.js';
import { s3ErrorInfo } from './errors.js';
import type { WriteParams } from './write-protocol.js';

/** S3's largest single PUT: 5 GiB. */
export const MAX_PUT_SIZE = 5 * 1024 ** 3;
/** S3's multipart limits: parts of 5 MiB to 5 GiB (the last may be smaller), 10,000 of them. */
export const MIN_PART_SIZE = 5 * 1024 ** 2;
export const MAX_PARTS = 10_000;

/**
 * Headers bound into the signature. The presigner leaves `content-type` unsigned by default,
 * which would let a client store any type under the URL; signing it (and the length, and the
 * MD5) makes the server refuse anything else.
 */
const SIGNED_HEADERS = new Set(['content-type', 'content-length', 'content-md5', 'content-disposition']);
/**
 * A part's length is signed; its `Content-Type` is not (the object's type was fixed when the
 * upload was created, and a browser sends a sliced Blob's type, or none).
 */
const PART_SIGNED_HEADERS = new Set(['content-length']);

/**
 * Drop the request checksum the SDK adds under `requestChecksumCalculation: 'WHEN_SUPPORTED'`
 * (its default against AWS): presigned, it is the CRC32 of the empty body and would be hoisted
 * into the URL, so every real upload through it would fail its checksum.
 */
function withoutRequestChecksum<T extends { middlewareStack: { add: (...args: never[]) => void } }>(command: T): T {
  const strip = (next: (args: { request: { headers: Record<string, string> } }) => Promise<unknown>) =>
    async (args: { request: { headers: Record<string, string> } }) => {
      for (const name of Object.keys(args.request.headers)) {
        const lower = name.toLowerCase();
        if (lower.startsWith('x-amz-checksum-') || lower === 'x-amz-sdk-checksum-algorithm') delete args.request.headers[name];
      }
      return next(args);
    };
  (command.middlewareStack.add as (mw: unknown, options: unknown) => void)(strip, {
    step: 'build',
    priority: 'low',
    name: 'doorito:presignWithoutRequestChecksum',
  });
  return command;
}

export interface DirectUploadPlace {
  /** Sends CreateMultipartUpload, ListParts, Complete and Abort. */
  client: S3Client;
  /** Signs the URLs clients use (the public endpoint's client, when there is one). */
  signingClient: S3Client;
  bucket: string;
  prefix: string;
  /** ACL and object parameters every write carries; presigned, they go into the URL's query. */
  writeDefaults: WriteParams;
}

const checkUploadId = (uploadId: string): void => {
  if (typeof uploadId !== 'string' || uploadId === '') throw new StorageConfigError('uploadId must be the id create() returned.', { option: 'uploadId' });
};

/** Presigned PUTs and client-driven multipart uploads for one bucket; keys are full keys (prefix included). */
export class S3DirectUploads {
  readonly #place: DirectUploadPlace;

  constructor(place: DirectUploadPlace) {
    this.#place = place;
  }

  async #sign(command: PutObjectCommand | UploadPartCommand, expiresIn: number, signableHeaders: Set<string>): Promise<{ url: string; expiresAt: Date }> {
    const signedAt = Date.now();
    const url = await getSignedUrl(this.#place.signingClient, withoutRequestChecksum(command) as PutObjectCommand, { expiresIn, signableHeaders });
    return { url, expiresAt: new Date(Math.floor(signedAt / 1000) * 1000 + expiresIn * 1000) };
  }

  /** A presigned PutObject of exactly `options.size` bytes of `options.contentType` at the full key. */
  async presignPut(fullKey: string, options: PresignUploadOptions): Promise<PresignedUpload> {
    const expiresIn = checkPresignOptions(options, MAX_PUT_SIZE);
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/PresignedUrlUploadObject.html
    // Signed headers must arrive with the same values; Content-MD5 makes S3 check the bytes (BadDigest).
    const command = new PutObjectCommand({
      ...this.#place.writeDefaults,
      Bucket: this.#place.bucket,
      Key: fullKey,
      ContentType: options.contentType,
      ContentLength: options.size,
      ...(options.md5 === undefined ? {} : { ContentMD5: options.md5 }),
      ...(options.contentDisposition === undefined ? {} : { ContentDisposition: options.contentDisposition }),
    });
    const { url, expiresAt } = await this.#sign(command, expiresIn, SIGNED_HEADERS);
    return { method: 'PUT', url, headers: uploadHeaders(options), expiresAt };
  }

  async create(fullKey: string, options: CreateMultipartOptions): Promise<{ uploadId: string }> {
    checkPresignOptions({ contentType: options.contentType, size: 0, ...(options.contentDisposition === undefined ? {} : { contentDisposition: options.contentDisposition }) });
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html
    // The type and disposition are fixed here, for the object the parts become.
    const output = await this.#place.client.send(
      new CreateMultipartUploadCommand({
        ...this.#place.writeDefaults,
        Bucket: this.#place.bucket,
        Key: fullKey,
        ContentType: options.contentType,
        ...(options.contentDisposition === undefined ? {} : { ContentDisposition: options.contentDisposition }),
      }),
    );
    if (output.UploadId === undefined) throw new Error(`CreateMultipartUpload of "${fullKey}" returned no UploadId`);
    return { uploadId: output.UploadId };
  }

  async presignPart(fullKey: string, uploadId: string, part: { partNumber: number; size: number; expiresIn?: number }): Promise<PresignedUpload> {
    checkUploadId(uploadId);
    if (!Number.isInteger(part.partNumber) || part.partNumber < 1 || part.partNumber > MAX_PARTS) {
      throw new StorageConfigError(`partNumber must be a whole number from 1 to ${MAX_PARTS}; got ${String(part.partNumber)}.`, { option: 'partNumber' });
    }
    const expiresIn = part.expiresIn ?? DEFAULT_UPLOAD_EXPIRES_IN;
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_PRESIGN_EXPIRES_IN) {
      throw new StorageConfigError(`expiresIn must be a whole number of seconds from 1 to ${MAX_PRESIGN_EXPIRES_IN}.`, { option: 'expiresIn' });
    }
    if (!Number.isSafeInteger(part.size) || part.size < 1 || part.size > MAX_PUT_SIZE) {
      throw new StorageConfigError(`A part's size must be from 1 byte to 5 GiB; got ${String(part.size)}.`, { option: 'size' });
    }
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html
    const command = new UploadPartCommand({
      Bucket: this.#place.bucket,
      Key: fullKey,
      UploadId: uploadId,
      PartNumber: part.partNumber,
      ContentLength: part.size,
    });
    const { url, expiresAt } = await this.#sign(command, expiresIn, PART_SIGNED_HEADERS);
    return { method: 'PUT', url, headers: {}, expiresAt };
  }

  async listParts(fullKey: string, uploadId: string): Promise<UploadedPart[]> {
    checkUploadId(uploadId);
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html (up to 1,000 per page)
    for (;;) {
      const output = await this.#place.client.send(
        new ListPartsCommand({ Bucket: this.#place.bucket, Key: fullKey, UploadId: uploadId, ...(marker === undefined ? {} : { PartNumberMarker: marker }) }),
      );
      for (const part of output.Parts ?? []) {
        if (part.PartNumber === undefined || part.ETag === undefined) continue;
        parts.push({ partNumber: part.PartNumber, size: part.Size ?? 0, etag: part.ETag });
      }
      if (output.IsTruncated !== true || output.NextPartNumberMarker === undefined) break;
      marker = output.NextPartNumberMarker;
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async complete(fullKey: string, uploadId: string, parts: ReadonlyArray<Pick<UploadedPart, 'partNumber' | 'etag'>>): Promise<void> {
    checkUploadId(uploadId);
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html
    // Parts in ascending order; every part but the last at least 5 MiB.
    await this.#place.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.#place.bucket,
        Key: fullKey,
        UploadId: uploadId,
        MultipartUpload: { Parts: [...parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
      }),
    );
  }

  async abort(fullKey: string, uploadId: string): Promise<void> {
    checkUploadId(uploadId);
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html
    try {
      await this.#place.client.send(new AbortMultipartUploadCommand({ Bucket: this.#place.bucket, Key: fullKey, UploadId: uploadId }));
    } catch (error) {
      // Aborted or completed already: nothing of it is left to free.
      if (s3ErrorInfo(error).code !== 'NoSuchUpload') throw error;
    }
  }
}
