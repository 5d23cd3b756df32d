/**
 * Cutting a save's content into multipart parts, and uploading them a few at a time.
 */
import type { NormalizedContent } from '../../content.js';
import type { MemoryBudget } from './memory-budget.js';

/** One part: its bytes, and the reservation they hold in the budget until `release()`. */
export interface Part {
  body: Buffer;
  /**
   * Give the part's memory back (idempotent). `reusable`: no request refers to the bytes any
   * more (the request that sent them has ended), so the buffer may carry the next part.
   */
  release(reusable: boolean): void;
}

const NOTHING_HELD = (): void => undefined;

/**
 * The content as parts of exactly `partSize` bytes (the last one shorter, and one empty part
 * for empty content). Bytes already in memory are sliced, not copied, and reserve nothing. A
 * stream is read a part at a time, into a buffer reserved from `budget` before the part's first
 * byte is read: with the budget spent, the stream is not read at all.
 */
export class PartReader {
  readonly #source: NormalizedContent;
  readonly #partSize: number;
  readonly #budget: MemoryBudget;
  readonly #onProgress: ((bytes: number) => void) | undefined;
  readonly #held = new Set<Part>();
  #chunks: AsyncIterator<Buffer | string> | undefined;
  /** The rest of the chunk that overflowed the previous part. */
  #leftover: Buffer | undefined;
  #offset = 0;
  #total = 0;
  #ended = false;
  #yielded = false;

  constructor(source: NormalizedContent, partSize: number, budget: MemoryBudget, onProgress?: (bytes: number) => void) {
    this.#source = source;
    this.#partSize = partSize;
    this.#budget = budget;
    this.#onProgress = onProgress;
  }

  /**
   * The next part, or undefined after the last. With `wait: false`, 'busy' instead of waiting
   * when the budget has no room now: a save that already holds a part it cannot send yet must
   * not wait for another, or saves that each hold one would wait for each other forever.
   */
  async next(signal: AbortSignal, options: { wait: boolean } = { wait: true }): Promise<Part | undefined | 'busy'> {
    if (this.#source.kind === 'bytes') return this.#slice(this.#source.bytes);
    if (this.#ended && this.#leftover === undefined) {
      if (this.#yielded) return undefined;
      this.#yielded = true;
      return { body: Buffer.alloc(0), release: NOTHING_HELD };
    }
    const size = this.#partSize;
    if (!options.wait) {
      if (!this.#budget.tryReserve(size)) return 'busy';
    } else {
      await this.#budget.reserve(size, signal);
    }
    const part = this.#hold(this.#budget.buffer(size), size);
    try {
      const filled = await this.#fill(part.body);
      if (filled === 0 && this.#yielded) {
        part.release(true);
        return undefined;
      }
      this.#yielded = true;
      part.body = part.body.subarray(0, filled);
      return part;
    } catch (error) {
      part.release(true);
      throw error;
    }
  }

  #slice(bytes: Buffer): Part | undefined {
    if (this.#yielded && this.#offset >= bytes.length) return undefined;
    const body = bytes.subarray(this.#offset, Math.min(bytes.length, this.#offset + this.#partSize));
    this.#offset += this.#partSize;
    this.#yielded = true;
    return { body, release: NOTHING_HELD };
  }

  #hold(buffer: Buffer, size: number): Part {
    const budget = this.#budget;
    const held = this.#held;
    let released = false;
    const part: Part = {
      body: buffer,
      release(reusable) {
        if (released) return;
        released = true;
        held.delete(part);
        if (reusable) budget.recycle(buffer);
        budget.release(size);
      },
    };
    held.add(part);
    return part;
  }

  /** Copy the stream into `buffer` until it is full or the stream ends; returns the bytes copied. */
  async #fill(buffer: Buffer): Promise<number> {
    let filled = 0;
    if (this.#leftover !== undefined) {
      filled = this.#put(buffer, filled, this.#leftover);
    }
    if (this.#source.kind !== 'stream') return filled;
    this.#chunks ??= (this.#source.stream as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    while (filled < buffer.length && !this.#ended) {
      const next = await this.#chunks.next();
      if (next.done === true) {
        this.#ended = true;
        break;
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      this.#total += chunk.length;
      this.#onProgress?.(this.#total);
      filled = this.#put(buffer, filled, chunk);
    }
    return filled;
  }

  /** Copy as much of `chunk` as fits at `at`; keep the rest for the next part. */
  #put(buffer: Buffer, at: number, chunk: Buffer): number {
    const room = buffer.length - at;
    if (chunk.length > room) {
      chunk.copy(buffer, at, 0, room);
      this.#leftover = chunk.subarray(room);
      return buffer.length;
    }
    chunk.copy(buffer, at);
    this.#leftover = undefined;
    return at + chunk.length;
  }

  /**
   * Stop: give back every part not yet released (not for reuse: a request may still hold it)
   * and stop reading the stream.
   */
  async close(): Promise<void> {
    for (const part of [...this.#held]) part.release(false);
    this.#leftover = undefined;
    await this.#chunks?.return?.(undefined);
  }
}

/**
 * Upload the parts `nextPart` gives, with at most `queueSize` in flight and the next one read
 * ahead (backpressure on the source beyond that, and from the budget). Each part is released
 * when its request ends. On the first failure the rest are cancelled through `cancel`, and
 * this rejects only after every part in flight has settled: an AbortMultipartUpload sent
 * earlier would leave the stragglers' parts stored.
 */
export async function uploadAll(
  nextPart: () => Promise<Part | undefined>,
  queueSize: number,
  upload: (partNumber: number, body: Buffer) => Promise<string | undefined>,
  cancel: (reason: unknown) => void,
): Promise<Array<{ PartNumber: number; ETag: string | undefined }>> {
  const done: Array<{ PartNumber: number; ETag: string | undefined }> = [];
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    if (failure !== undefined) return;
    failure = { error };
    cancel(error);
  };
  let partNumber = 0;
  try {
    while (failure === undefined) {
      // Read the next part while the queue is full, so it is ready when a slot frees up: at
      // most queueSize + 1 parts in memory.
      const part = await nextPart();
      if (part === undefined) break;
      while (inFlight.size >= queueSize && failure === undefined) await Promise.race(inFlight);
      if (failure !== undefined) {
        part.release(true);
        break;
      }
      partNumber += 1;
      const number = partNumber;
      const task = upload(number, part.body).then(
        (etag) => {
          // The request has ended: nothing refers to the bytes any more.
          part.release(true);
          done.push({ PartNumber: number, ETag: etag });
        },
        (error: unknown) => {
          // An aborted request may still be writing the bytes out: never reuse them.
          part.release(false);
          fail(error);
        },
      );
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    }
  } catch (error) {
    fail(error);
  }
  await Promise.allSettled([...inFlight]);
  if (failure !== undefined) throw failure.error;
  return done.sort((a, b) => a.PartNumber - b.PartNumber);
}
