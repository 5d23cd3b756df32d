/**
 * The S3 write protocol of `save()`, top to bottom:
 *
 * 1. Pick a key. Without overwrite, a candidate is first offered to the caller's `reserveKey`,
 *    then claimed on the server: a small body is PUT with `If-None-Match: *`; a stream larger
 *    than a part first claims its key with a conditional empty object, because some servers
 *    (Ceph RGW) ignore `If-None-Match` on CompleteMultipartUpload. Servers that refuse
 *    conditional writes (501, OpenStack Swift) are detected once and get HEAD-then-write.
 * 2. Write: one PutObject, or CreateMultipartUpload + UploadPart × n + Complete.
 * 3. Recognise our own write. Every save carries a random token in its metadata; when a
 *    response is lost and the SDK's retry meets 412 (or NoSuchUpload after Complete), a HEAD
 *    that shows our token means the write landed and is ours.
 * 4. Clean up after a failure or an abort: abort the multipart upload and any stray one on the
 *    key (a lost CreateMultipartUpload answer makes the SDK create a second), delete our claim
 *    or our object. Each step retries with backoff for `cleanupTimeoutMs`; what is still left is
 *    found by `listPendingWrites()`.
 *
 * Every request of a save runs under one AbortController: an abort, or the first failed part,
 * cancels whatever is in flight.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type HeadObjectCommandOutput,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { claimAvailableName, discard, reserveExact, type NormalizedContent } from '../../content.js';
import { StorageAbortedError } from '../../errors.js';
import { retryFor } from '../../retry.js';
import type { SaveOptions } from '../../types.js';
import { isS3ConditionalUnsupported, isS3NotFound, isS3PreconditionFailed, isS3Refused, isS3Transient, s3ErrorInfo } from './errors.js';
import type { S3NoOverwriteStrategy } from './options.js';
import type { MemoryBudget } from './memory-budget.js';
import { PartReader, uploadAll, type Part } from './parts.js';

/** User-metadata name that marks an empty object as a pending name claim; its value is the save's token. */
export const CLAIM_METADATA = 'doorito-claim';
/** User-metadata name that carries the token of the save that wrote an object. */
export const TOKEN_METADATA = 'doorito-token';

export type WriteParams = Omit<PutObjectCommandInput, 'Bucket' | 'Key' | 'Body'>;

/** Whether the server honours `If-None-Match: *` on PutObject. */
export type ConditionalWrites = 'unknown' | 'supported' | 'unsupported';

export interface WriterConfig {
  client: S3Client;
  bucket: string;
  /** The storage's `location/`, or ''. */
  prefix: string;
  partSize: number;
  queueSize: number;
  /** Where stream parts get their memory (shared by every save of the storage, or more). */
  budget: MemoryBudget;
  noOverwrite: S3NoOverwriteStrategy;
  cleanupTimeoutMs: number;
}

export interface WriteRequest {
  name: string;
  source: NormalizedContent;
  params: WriteParams;
  overwrite: boolean;
  signal: AbortSignal | undefined;
  reserveKey: SaveOptions['reserveKey'];
  onProgress: SaveOptions['onProgress'];
}

export interface WriteResult {
  key: string;
  size: number;
  etag?: string;
}

/** What one save has put on the server so far: what its clean-up must remove. */
interface WriteState {
  readonly token: string;
  readonly overwrite: boolean;
  /** The key we write (or claimed) last. */
  key: string | undefined;
  /** A request that may have stored an object (or claim) under `key` was sent. */
  written: boolean;
  uploadId: string | undefined;
  /** Another multipart upload may exist on `key` (CreateMultipartUpload was retried). */
  strayUploads: boolean;
}

const send = <T>(signal: AbortSignal) => ({ abortSignal: signal }) as T;

export class S3Writer {
  readonly #config: WriterConfig;
  #conditional: ConditionalWrites;
  readonly #background = new Set<Promise<unknown>>();

  constructor(config: WriterConfig) {
    this.#config = config;
    this.#conditional = config.noOverwrite === 'head' ? 'unsupported' : 'unknown';
  }

  /** What this storage has learnt about the server's conditional writes. */
  get conditionalWrites(): ConditionalWrites {
    return this.#conditional;
  }

  /** Resolves when every clean-up still running in the background (after aborts) has ended. */
  async drain(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  #full(key: string): string {
    return this.#config.prefix + key;
  }

  /**
   * Store the content. Rejects with the original error (the caller translates it); on an
   * abort it rejects at once, while the clean-up goes on in the background.
   */
  async write(request: WriteRequest): Promise<WriteResult> {
    const state: WriteState = {
      token: randomUUID(),
      overwrite: request.overwrite,
      key: undefined,
      written: false,
      uploadId: undefined,
      strayUploads: false,
    };
    const controller = new AbortController();
    const { signal } = request;
    const work = (async () => {
      try {
        const result = await this.#run(request, state, controller);
        // A save never resolves after its signal fired: what landed is ours, and goes.
        if (signal?.aborted === true) throw new StorageAbortedError(request.name, { cause: signal.reason });
        return result;
      } catch (error) {
        controller.abort(error);
        discard(request.source);
        await this.#cleanUp(state);
        throw error;
      }
    })();
    if (signal === undefined) return work;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => {
        controller.abort(signal.reason);
        discard(request.source);
        reject(new StorageAbortedError(request.name, { cause: signal.reason }));
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([work, aborted]);
    } finally {
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
      if (signal.aborted) this.#track(work);
    }
  }

  #track(work: Promise<unknown>): void {
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    this.#background.add(settled);
    void settled.finally(() => this.#background.delete(settled));
  }

  async #run(request: WriteRequest, state: WriteState, controller: AbortController): Promise<WriteResult> {
    const { partSize, budget } = this.#config;
    const { signal } = controller;
    const reader = new PartReader(request.source, partSize, budget, request.source.kind === 'stream' ? request.onProgress : undefined);
    const next = async (wait: boolean): Promise<Part | undefined | 'busy'> => reader.next(signal, { wait });
    try {
      const first = (await next(true)) as Part;
      // A full first part may have more behind it. Read a second one only if the budget has
      // room now: waiting for it while holding the first could leave saves that each hold one
      // waiting for each other. Without it, go multipart anyway (one part is a valid upload).
      const second = first.body.length === partSize ? await next(false) : undefined;
      if (second === undefined) {
        const result = await this.#putSmall(request, state, first, signal);
        if (request.source.kind === 'bytes') request.onProgress?.(first.body.length);
        return result;
      }
      const firstParts = second === 'busy' ? [first] : [first, second];
      return await this.#putMultipart(request, state, firstParts, async () => (await next(true)) as Part | undefined, controller);
    } finally {
      await reader.close();
    }
  }

  // ---- 1. picking a key -------------------------------------------------------------------

  async #chooseKey(request: WriteRequest, tryCandidate: (candidate: string) => Promise<boolean>): Promise<string> {
    if (!request.overwrite) return claimAvailableName(request.name, tryCandidate, request.reserveKey);
    await reserveExact(request.name, request.reserveKey);
    return request.name;
  }

  /**
   * PUT with `If-None-Match: *`: 'written' (also when a 412 hides our own earlier attempt),
   * 'taken', or 'unsupported' when the server refuses the header.
   */
  async #putIfAbsent(state: WriteState, key: string, input: WriteParams & { Body: Uint8Array }, marker: string, signal: AbortSignal) {
    state.key = key;
    state.written = true;
    try {
      // https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
      // If-None-Match: * fails with 412 when the key exists: an atomic claim.
      const output = await this.#config.client.send(
        new PutObjectCommand({ ...input, Bucket: this.#config.bucket, Key: this.#full(key), IfNoneMatch: '*' }),
        send(signal),
      );
      this.#conditional = 'supported';
      return { outcome: 'written' as const, etag: output.ETag };
    } catch (error) {
      if (isS3ConditionalUnsupported(error)) {
        state.written = false;
        this.#conditional = 'unsupported';
        return { outcome: 'unsupported' as const };
      }
      if (!isS3PreconditionFailed(error)) {
        if (isS3Refused(error)) state.written = false;
        throw error;
      }
      this.#conditional = 'supported';
      // The SDK may have retried a PUT whose answer was lost: the 412 is then about our own write.
      const head = await this.#head(key, signal);
      if (head?.Metadata?.[marker] === state.token) return { outcome: 'written' as const, etag: head.ETag };
      state.written = false;
      return { outcome: 'taken' as const };
    }
  }

  /** Any object at `key`, a claim included, makes it taken. */
  async #taken(key: string, signal: AbortSignal): Promise<boolean> {
    return (await this.#head(key, signal)) !== undefined;
  }

  /**
   * Take `name` (or a free alternative) for a server-side copy: claimed like a multipart save's
   * key. `release()` removes the claim when the copy fails.
   */
  async claim(name: string, overwrite: boolean): Promise<{ key: string; release: () => Promise<void> }> {
    const state: WriteState = { token: randomUUID(), overwrite, key: undefined, written: false, uploadId: undefined, strayUploads: false };
    if (overwrite) return { key: name, release: async () => undefined };
    const { signal } = new AbortController();
    try {
      const key = await claimAvailableName(name, (candidate) => this.#claim(state, candidate, signal));
      return { key, release: () => this.#cleanUp(state) };
    } catch (error) {
      await this.#cleanUp(state);
      throw error;
    }
  }

  // ---- 2. writing -------------------------------------------------------------------------

  async #putSmall(request: WriteRequest, state: WriteState, part: Part, signal: AbortSignal): Promise<WriteResult> {
    try {
      const result = await this.#putBody(request, state, part.body, signal);
      part.release(true);
      return result;
    } catch (error) {
      part.release(false);
      throw error;
    }
  }

  async #putBody(request: WriteRequest, state: WriteState, body: Buffer, signal: AbortSignal): Promise<WriteResult> {
    const input = {
      ...request.params,
      Metadata: { ...request.params.Metadata, [TOKEN_METADATA]: state.token },
      Body: body,
      ContentLength: body.length,
    };
    let etag: string | undefined;
    const putPlain = async (key: string): Promise<void> => {
      etag = (await this.#sendPut(state, key, input, signal)).ETag;
    };
    const key = await this.#chooseKey(request, async (candidate) => {
      if (this.#conditional !== 'unsupported') {
        const put = await this.#putIfAbsent(state, candidate, input, TOKEN_METADATA, signal);
        if (put.outcome === 'written') etag = put.etag;
        if (put.outcome !== 'unsupported') return put.outcome === 'written';
      }
      if (await this.#taken(candidate, signal)) return false;
      await putPlain(candidate);
      return true;
    });
    if (request.overwrite) await putPlain(key);
    return { key, size: body.length, ...(etag === undefined ? {} : { etag }) };
  }

  /** An unconditional PutObject, noting for the clean-up that something may land under `key`. */
  async #sendPut(state: WriteState, key: string, input: WriteParams & { Body: Uint8Array }, signal: AbortSignal) {
    state.key = key;
    state.written = true;
    try {
      return await this.#config.client.send(new PutObjectCommand({ ...input, Bucket: this.#config.bucket, Key: this.#full(key) }), send(signal));
    } catch (error) {
      if (isS3Refused(error)) state.written = false;
      throw error;
    }
  }

  /** Claim `key` for a multipart upload with an empty placeholder object that names our token. */
  async #claim(state: WriteState, key: string, signal: AbortSignal): Promise<boolean> {
    const input = { Body: new Uint8Array(0), ContentLength: 0, Metadata: { [CLAIM_METADATA]: state.token } };
    if (this.#conditional !== 'unsupported') {
      const put = await this.#putIfAbsent(state, key, input, CLAIM_METADATA, signal);
      if (put.outcome !== 'unsupported') return put.outcome === 'written';
    }
    // No conditional writes: HEAD, claim, and read the claim back. Two writers racing inside
    // the gap can both win; the UploadService's repository claim keeps its own uploads apart.
    if (await this.#taken(key, signal)) return false;
    await this.#sendPut(state, key, input, signal);
    if ((await this.#head(key, signal))?.Metadata?.[CLAIM_METADATA] === state.token) return true;
    state.written = false;
    return false;
  }

  async #putMultipart(
    request: WriteRequest,
    state: WriteState,
    firstParts: Part[],
    nextPart: () => Promise<Part | undefined>,
    controller: AbortController,
  ): Promise<WriteResult> {
    const { client, bucket } = this.#config;
    const { signal } = controller;
    const key = await this.#chooseKey(request, (candidate) => this.#claim(state, candidate, signal));
    state.key = key;
    const Key = this.#full(key);
    // Until CreateMultipartUpload answers, any number of uploads may exist on the key (its
    // answer lost, the SDK retried); the clean-up then sweeps them.
    state.strayUploads = true;
    const created = await client.send(
      new CreateMultipartUploadCommand({ ...request.params, Metadata: { ...request.params.Metadata, [TOKEN_METADATA]: state.token }, Bucket: bucket, Key }),
      send(signal),
    );
    state.uploadId = created.UploadId;
    state.strayUploads = (created.$metadata.attempts ?? 1) > 1;
    let size = 0;
    const queued = [...firstParts];
    const uploaded = await uploadAll(
      async () => queued.shift() ?? nextPart(),
      this.#config.queueSize,
      async (PartNumber, Body) => {
        size += Body.length;
        // https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html
        // Re-sending a part number replaces that part: the SDK's retries are safe.
        const output = await client.send(
          new UploadPartCommand({ Bucket: bucket, Key, UploadId: state.uploadId, PartNumber, Body, ContentLength: Body.length }),
          send(signal),
        );
        return output.ETag;
      },
      (reason) => {
        // Stop the rest: parts in flight, and the source (which may be stalled).
        controller.abort(reason);
        discard(request.source);
      },
    );
    if (request.source.kind === 'bytes') request.onProgress?.(size);
    let etag: string | undefined;
    try {
      const output = await client.send(
        new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId: state.uploadId, MultipartUpload: { Parts: uploaded } }),
        send(signal),
      );
      etag = output.ETag;
    } catch (error) {
      // A lost answer to Complete: the retry finds the upload gone (404) or the key taken (412).
      const head = await this.#head(key, signal).catch(() => undefined);
      if (head?.Metadata?.[TOKEN_METADATA] !== state.token) throw error;
      etag = head.ETag;
    }
    state.uploadId = undefined;
    if (state.strayUploads && !state.overwrite) await this.#abortUploadsOn(key, signal);
    // CompleteMultipartUpload answers with an empty ETag on Ceph RGW; HEAD has the real one.
    if (etag === undefined || etag === '') etag = (await this.#head(key, signal))?.ETag;
    return { key, size, ...(etag === undefined ? {} : { etag }) };
  }

  // ---- 4. cleaning up ---------------------------------------------------------------------

  async #cleanUp(state: WriteState): Promise<void> {
    const { key } = state;
    if (key === undefined) return;
    const retry = <T>(step: (signal: AbortSignal) => Promise<T>) =>
      retryFor(step, { timeoutMs: this.#config.cleanupTimeoutMs, retryable: isS3Transient }).catch(() => undefined);
    const { uploadId } = state;
    if (uploadId !== undefined) {
      await retry(async (signal) => {
        try {
          // https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html
          await this.#config.client.send(
            new AbortMultipartUploadCommand({ Bucket: this.#config.bucket, Key: this.#full(key), UploadId: uploadId }),
            send(signal),
          );
        } catch (error) {
          if (!isS3NotFound(error)) throw error;
        }
      });
    }
    // Our key is ours alone: any other upload on it is a stray of ours (CreateMultipartUpload
    // answered twice, or our abort cut its answer off).
    if (!state.overwrite && (uploadId !== undefined || state.strayUploads)) await retry((signal) => this.#abortUploadsOn(key, signal));
    if (state.written) await retry((signal) => this.#deleteIfOurs(key, state.token, signal));
  }

  async #abortUploadsOn(key: string, signal: AbortSignal): Promise<void> {
    const { client, bucket } = this.#config;
    const Key = this.#full(key);
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: Key }), send(signal));
    for (const upload of listed.Uploads ?? []) {
      if (upload.Key !== Key) continue;
      try {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId: upload.UploadId }), send(signal));
      } catch (error) {
        if (!isS3NotFound(error)) throw error;
      }
    }
  }

  /** Delete `key` if our save wrote what is there (its claim or its object). */
  async #deleteIfOurs(key: string, token: string, signal: AbortSignal): Promise<void> {
    const head = await this.#head(key, signal);
    if (head === undefined) return;
    if (head.Metadata?.[CLAIM_METADATA] !== token && head.Metadata?.[TOKEN_METADATA] !== token) return;
    await this.#config.client.send(new DeleteObjectCommand({ Bucket: this.#config.bucket, Key: this.#full(key) }), send(signal));
  }

  /** HEAD `key` as it is on the server (claims included); undefined when there is nothing. */
  async #head(key: string, signal: AbortSignal | undefined): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.#config.client.send(
        new HeadObjectCommand({ Bucket: this.#config.bucket, Key: this.#full(key) }),
        signal === undefined ? {} : send(signal),
      );
    } catch (error) {
      if (isS3NotFound(error)) return undefined;
      throw await this.#explainHeadError(key, error, signal);
    }
  }

  /**
   * A HEAD answer has no body, so a 403 does not say why (a wrong secret, or a policy). Ask
   * the same with a one-byte GET, whose error names the reason (SignatureDoesNotMatch, …).
   */
  async #explainHeadError(key: string, error: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    if (s3ErrorInfo(error).status !== 403) return error;
    try {
      const output = await this.#config.client.send(
        new GetObjectCommand({ Bucket: this.#config.bucket, Key: this.#full(key), Range: 'bytes=0-0' }),
        signal === undefined ? {} : send(signal),
      );
      (output.Body as { destroy?: () => void } | undefined)?.destroy?.();
      return error;
    } catch (explained) {
      return s3ErrorInfo(explained).status === 403 ? explained : error;
    }
  }
}
