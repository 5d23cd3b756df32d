/**
 * The memory that S3 saves may hold for multipart parts, shared by every save of a storage (or
 * of several storages given the same budget). A save reserves a whole part before it reads the
 * part's bytes from its source; when the budget is spent, it waits (first come, first served)
 * and reads nothing, so the source is paused: backpressure instead of allocation.
 *
 * Part buffers are reused while the budget is busy, so memory is what the budget holds, not
 * what the garbage collector has yet to free; they are dropped when the budget goes idle.
 */
import { StorageAbortedError, StorageConfigError } from '../../errors.js';

/** What a budget holds now and has held; for tests and metrics. */
export interface MemoryBudgetStats {
  /** The limit, in bytes (`Infinity` for none). */
  limit: number;
  /** Bytes reserved now. */
  used: number;
  /** The most bytes ever reserved at once. */
  peak: number;
  /** Reservations waiting for room. */
  waiting: number;
  /** Part buffers allocated so far (each reused until the budget goes idle). */
  buffersAllocated: number;
}

interface Waiter {
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

/**
 * The default budget of an S3Storage, in bytes: 64 MiB, eight 8 MiB parts in flight. On the
 * bench machine it kept 32 concurrent uploads at the throughput of an unbounded portal
 * (docs/performance.md, section 9).
 */
export const DEFAULT_MEMORY_BUDGET = 64 * 1024 * 1024;

/**
 * A limit on the bytes of multipart parts held at once. A storage makes its own from its
 * `memoryBudget` option; pass one instance to several storages to share it.
 *
 * No save deadlocks waiting for room: a save only waits while the parts it holds are being
 * uploaded (they come back when their request ends), and a reservation larger than the whole
 * budget is granted when nothing else is held, so a lone save always makes progress.
 * @example
 * const budget = new MemoryBudget(512 * 1024 * 1024)
 * const media = new S3Storage({ bucket: 'media', memoryBudget: budget })
 * const backups = new S3Storage({ bucket: 'backups', memoryBudget: budget })
 */
export class MemoryBudget {
  readonly #limit: number;
  #used = 0;
  #peak = 0;
  #allocated = 0;
  readonly #waiters: Waiter[] = [];
  /** Free part buffers, by size. */
  #free = new Map<number, Buffer[]>();

  /** @throws StorageConfigError unless `limit` is a whole number of bytes ≥ 1, or `Infinity` */
  constructor(limit: number) {
    if (!(limit === Infinity || (Number.isInteger(limit) && limit >= 1))) {
      throw new StorageConfigError(`S3Storage option "memoryBudget" must be a whole number of bytes, at least 1, or Infinity; got ${String(limit)}.`, {
        option: 'memoryBudget',
      });
    }
    this.#limit = limit;
  }

  get stats(): MemoryBudgetStats {
    return { limit: this.#limit, used: this.#used, peak: this.#peak, waiting: this.#waiters.length, buffersAllocated: this.#allocated };
  }

  #fits(bytes: number): boolean {
    return this.#used + bytes <= this.#limit || this.#used === 0;
  }

  #take(bytes: number): void {
    this.#used += bytes;
    if (this.#used > this.#peak) this.#peak = this.#used;
  }

  /** Reserve `bytes` now if there is room and nobody is waiting; false otherwise. */
  tryReserve(bytes: number): boolean {
    if (this.#waiters.length > 0 || !this.#fits(bytes)) return false;
    this.#take(bytes);
    return true;
  }

  /** Reserve `bytes`, waiting in line while the budget is spent. An abort leaves the line. */
  reserve(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.tryReserve(bytes)) return Promise.resolve();
    if (signal?.aborted === true) return Promise.reject(new StorageAbortedError(undefined, { cause: signal.reason }));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index !== -1) this.#waiters.splice(index, 1);
        reject(new StorageAbortedError(undefined, { cause: signal?.reason }));
        // The one that left may have been blocking the line.
        this.#grant();
      };
      const waiter: Waiter = { bytes, resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Give back a reservation. */
  release(bytes: number): void {
    this.#used -= bytes;
    if (this.#used < 0) this.#used = 0;
    this.#grant();
    // Idle: let the collector have the buffers.
    if (this.#used === 0) this.#free = new Map();
  }

  #grant(): void {
    for (let next = this.#waiters[0]; next !== undefined && this.#fits(next.bytes); next = this.#waiters[0]) {
      this.#waiters.shift();
      next.cleanup();
      this.#take(next.bytes);
      next.resolve();
    }
  }

  /** A part buffer of `size` bytes, reused when one is free. Call within a reservation. */
  buffer(size: number): Buffer {
    const reused = this.#free.get(size)?.pop();
    if (reused !== undefined) return reused;
    this.#allocated += 1;
    // Not from Node's shared pool: the buffer is ours alone to reuse.
    return Buffer.allocUnsafeSlow(size);
  }

  /** Hand back a buffer no request refers to any more, for the next part. */
  recycle(buffer: Buffer): void {
    if (this.#used === 0) return;
    const list = this.#free.get(buffer.length);
    if (list === undefined) this.#free.set(buffer.length, [buffer]);
    else list.push(buffer);
  }
}
