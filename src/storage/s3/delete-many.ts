/**
 * `deleteMany()` on S3, top to bottom:
 * 1. validate every key (nothing is sent if one is invalid) and drop duplicates;
 * 2. split them into DeleteObjects requests of up to 1,000 keys (`Quiet`: the answer lists only
 *    the keys that failed), sent a few at a time, each with a `Content-MD5` of its body;
 * 3. per-key errors that may pass (InternalError, SlowDown, …) are sent again, alone, with backoff
 *    for a bounded time; `NoSuchKey` is success; the rest are reported;
 * 4. a server that answers DeleteObjects with NotImplemented (GCS) gets one DeleteObject per key,
 *    from then on;
 * 5. whatever is left is reported in one StorageDeleteError; every other key is gone.
 */
import { DeleteObjectCommand, DeleteObjectsCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  StorageAbortedError,
  StorageDeleteError,
  type DeleteFailure,
  type StorageError,
} from '../../errors.js';
import { validateKey } from '../../keys.js';
import { retryFor } from '../../retry.js';
import { isS3Transient, s3ErrorInfo, toStorageError } from './errors.js';
import type { BucketPlace } from './pending-writes.js';

/** S3's limit of keys per DeleteObjects (Swift's `max_multi_delete_objects` and Ceph's default too). */
export const MAX_KEYS_PER_REQUEST = 1000;
/** DeleteObjects requests in flight at once: each one is up to 1,000 deletes of work for the server. */
const CONCURRENT_REQUESTS = 3;
/** DeleteObject requests in flight at once, when the server has no DeleteObjects. */
const CONCURRENT_SINGLE_DELETES = 16;
/** How long the keys of one request are retried after transient errors before they are reported. */
const RETRY_TIMEOUT_MS = 30_000;

/**
 * Per-key `<Error>` codes worth another attempt. A per-key error has no HTTP status of its own
 * (the request got a 200), so these are the codes whose documented status is 5xx or throttling,
 * plus Swift's `Server Error` (an unexpected failure of one object's DELETE).
 */
const TRANSIENT_KEY_CODES = new Set(['InternalError', 'ServiceUnavailable', 'SlowDown', 'RequestTimeout', 'OperationAborted', 'Server Error']);

/** The keys, validated (all of them, before any is deleted) and de-duplicated, in first-seen order. */
function uniqueKeys(keys: Iterable<string>): string[] {
  if (typeof keys === 'string') throw new InvalidKeyError(keys, 'deleteMany() takes a list of keys, not one string: wrap it, deleteMany([key])');
  return [...new Set(Array.from(keys, (key) => validateKey(key)))];
}

/** Run `task` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let index = next; index < items.length; index = next) {
      next += 1;
      await task(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Add `Content-MD5` of the exact body to one DeleteObjects request. S3 requires a body checksum
 * here; SDK v3 (since 3.729) sends only a CRC32 (`x-amz-checksum-crc32`, even with
 * `requestChecksumCalculation: 'WHEN_REQUIRED'`, as DeleteObjects requires one), which
 * OpenStack Swift's s3api refuses: 400 InvalidRequest "Missing required header for this
 * request: Content-MD5" (it checks the digest, too: BadDigest). AWS, Ceph RGW and Swift all accept
 * both headers together, so the CRC32 stays. Added in the build step after the SDK's
 * flexible-checksums middleware (same step, lower priority), so it is signed with the rest.
 */
function withContentMd5(command: DeleteObjectsCommand): DeleteObjectsCommand {
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown } | undefined;
      const body = request?.body;
      if (request?.headers !== undefined && (typeof body === 'string' || body instanceof Uint8Array)) {
        const present = Object.keys(request.headers).some((name) => name.toLowerCase() === 'content-md5');
        if (!present) request.headers['content-md5'] = createHash('md5').update(body).digest('base64');
      }
      return next(args);
    },
    { step: 'build', priority: 'low', name: 'dooritoDeleteObjectsContentMd5' },
  );
  return command;
}

/** The keys of one request that failed with a transient error, and those errors: try again. */
class TransientKeyErrors extends Error {
  constructor(readonly errors: ReadonlyMap<string, S3ServiceException>) {
    super(`${errors.size} keys failed transiently`);
  }
}

/** The server has no DeleteObjects (GCS's XML API answers 501 NotImplemented). */
function isNotImplemented(error: unknown): boolean {
  const { code, status } = s3ErrorInfo(error);
  return code === 'NotImplemented' || status === 501;
}

/** One batch deleter per S3Storage: it remembers whether the server has DeleteObjects. */
export class S3BatchDelete {
  readonly #place: BucketPlace;
  /** Set once DeleteObjects was answered with NotImplemented: one DeleteObject per key from then on. */
  #singleDeletes = false;

  constructor(place: BucketPlace) {
    this.#place = place;
  }

  /** Whether this storage has fallen back to one DeleteObject per key. */
  get singleDeletes(): boolean {
    return this.#singleDeletes;
  }

  async deleteMany(input: Iterable<string>, signal: AbortSignal | undefined): Promise<void> {
    const keys = uniqueKeys(input);
    if (signal?.aborted === true) throw new StorageAbortedError(undefined, { cause: signal.reason });
    const failed = new Map<string, StorageError>();
    const batches: string[][] = [];
    for (let start = 0; start < keys.length; start += MAX_KEYS_PER_REQUEST) batches.push(keys.slice(start, start + MAX_KEYS_PER_REQUEST));
    await eachLimited(batches, CONCURRENT_REQUESTS, (batch) => this.#deleteBatch(batch, failed, signal));
    if (failed.size === 0) return;
    const failures: DeleteFailure[] = keys.flatMap((key) => {
      const error = failed.get(key);
      return error === undefined ? [] : [{ key, error }];
    });
    // A key the server named that we did not send (it should not happen) is still reported.
    const sent = new Set(keys);
    for (const [key, error] of failed) if (!sent.has(key)) failures.push({ key, error });
    throw new StorageDeleteError(failures);
  }

  #translate(error: unknown, key: string, signal: AbortSignal | undefined): StorageError {
    return toStorageError(error, { key, bucket: this.#place.bucket, action: 'delete', signal });
  }

  async #deleteBatch(batch: string[], failed: Map<string, StorageError>, signal: AbortSignal | undefined): Promise<void> {
    if (this.#singleDeletes) {
      await this.#deleteEach(batch, failed, signal);
      return;
    }
    let pending = batch;
    let deadline: AbortSignal | undefined;
    try {
      await retryFor(
        async (attemptDeadline) => {
          deadline = attemptDeadline;
          signal?.throwIfAborted();
          const errors = await this.#send(pending, AbortSignal.any(signal === undefined ? [attemptDeadline] : [attemptDeadline, signal]));
          const transient = new Map<string, S3ServiceException>();
          for (const [key, error] of errors) {
            if (TRANSIENT_KEY_CODES.has(error.name)) transient.set(key, error);
            else failed.set(key, this.#translate(error, key, undefined));
          }
          pending = [...transient.keys()];
          if (transient.size > 0) throw new TransientKeyErrors(transient);
        },
        {
          timeoutMs: RETRY_TIMEOUT_MS,
          retryable: (error) =>
            signal?.aborted !== true && (error instanceof TransientKeyErrors || (isS3Transient(error) && !isNotImplemented(error))),
        },
      );
    } catch (error) {
      if (isNotImplemented(error) && signal?.aborted !== true) {
        this.#singleDeletes = true;
        await this.#deleteEach(pending, failed, signal);
        return;
      }
      // A request cut off by the retry deadline has timed out; it was not aborted by the caller.
      const cause = deadline?.aborted === true && signal?.aborted !== true ? (deadline.reason as unknown) : error;
      for (const key of pending) {
        const keyError = error instanceof TransientKeyErrors ? (error.errors.get(key) ?? cause) : cause;
        failed.set(key, this.#translate(keyError, key, signal));
      }
    }
  }

  /** One DeleteObjects; the per-key errors that are not "no such key", by key (without the prefix). */
  async #send(keys: readonly string[], abortSignal: AbortSignal): Promise<Map<string, S3ServiceException>> {
    const { client, bucket, prefix } = this.#place;
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
    // Up to 1,000 keys; Content-MD5 (or an x-amz-checksum-*) is required. A missing key counts as
    // deleted. Quiet: the answer lists only the keys that failed, as <Error> entries in a 200.
    const output = await client.send(
      withContentMd5(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: keys.map((key) => ({ Key: prefix + key })), Quiet: true },
        }),
      ),
      { abortSignal },
    );
    const errors = new Map<string, S3ServiceException>();
    for (const entry of output.Errors ?? []) {
      const code = entry.Code ?? 'UnknownError';
      if (code === 'NoSuchKey') continue;
      const full = entry.Key ?? '';
      const key = full.startsWith(prefix) ? full.slice(prefix.length) : full;
      // No $metadata status: the request itself succeeded, only this key did not.
      errors.set(
        key,
        new S3ServiceException({
          name: code,
          $fault: TRANSIENT_KEY_CODES.has(code) ? 'server' : 'client',
          $metadata: {},
          message: `S3 could not delete this key: ${code}${entry.Message === undefined ? '' : ` (${entry.Message})`}`,
        }),
      );
    }
    return errors;
  }

  /** One DeleteObject per key, a few at a time: for servers without DeleteObjects. */
  async #deleteEach(keys: readonly string[], failed: Map<string, StorageError>, signal: AbortSignal | undefined): Promise<void> {
    const { client, bucket, prefix } = this.#place;
    await eachLimited(keys, CONCURRENT_SINGLE_DELETES, async (key) => {
      try {
        await retryFor(
          async (deadline) => {
            signal?.throwIfAborted();
            // https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html
            // 204 for a missing key too; some gateways say 404, which is also success.
            await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: prefix + key }), {
              abortSignal: AbortSignal.any(signal === undefined ? [deadline] : [deadline, signal]),
            });
          },
          { timeoutMs: RETRY_TIMEOUT_MS, retryable: (error) => signal?.aborted !== true && isS3Transient(error) },
        );
      } catch (error) {
        const translated = this.#translate(error, key, signal);
        if (!(translated instanceof ObjectNotFoundError)) failed.set(key, translated);
      }
    });
  }
}
