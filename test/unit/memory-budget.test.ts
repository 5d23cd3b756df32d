/**
 * The S3 memory budget and the part reader, with a fake part upload (no server): the budget
 * never goes over its limit, saves wait instead of allocating, nobody deadlocks, and every
 * reservation comes back, on success, failure and abort.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { normalizeContent } from '../../src/content.js';
import { StorageAbortedError, isStorageConfigError } from '../../src/errors.js';
import { MemoryBudget } from '../../src/storage/s3/memory-budget.js';
import { PartReader, uploadAll, type Part } from '../../src/storage/s3/parts.js';
import { patternStream, sha256 } from '../helpers/streams.js';

const PART = 1024 * 1024;

/**
 * What S3Writer does with a stream, minus the network: read the first part, a second only if
 * the budget has room, then upload the rest `queueSize` at a time. Returns the sha256 of the
 * bytes "uploaded", in part order.
 */
async function fakeSave(
  budget: MemoryBudget,
  size: number,
  seed: number,
  options: { queueSize?: number; delayMs?: number; failAt?: number; signal?: AbortSignal } = {},
): Promise<string> {
  const controller = new AbortController();
  options.signal?.addEventListener('abort', () => controller.abort(options.signal?.reason), { once: true });
  const reader = new PartReader(normalizeContent(patternStream(size, seed)), PART, budget);
  const bodies = new Map<number, Buffer>();
  try {
    const first = (await reader.next(controller.signal)) as Part;
    const second = first.body.length === PART ? await reader.next(controller.signal, { wait: false }) : undefined;
    const queued: Part[] = second === undefined || second === 'busy' ? [first] : [first, second];
    await uploadAll(
      async () => queued.shift() ?? ((await reader.next(controller.signal)) as Part | undefined),
      options.queueSize ?? 4,
      async (partNumber, body) => {
        if (partNumber === options.failAt) throw new Error(`part ${partNumber} refused`);
        await sleep(options.delayMs ?? 1, undefined, { signal: controller.signal });
        // Copy: the buffer is reused for a later part once this resolves.
        bodies.set(partNumber, Buffer.from(body));
        return `etag-${partNumber}`;
      },
      (reason) => controller.abort(reason),
    );
  } finally {
    await reader.close();
  }
  const hash = createHash('sha256');
  for (const number of [...bodies.keys()].sort((a, b) => a - b)) hash.update(bodies.get(number) as Buffer);
  return hash.digest('hex');
}

async function expected(size: number, seed: number): Promise<string> {
  return sha256(patternStream(size, seed));
}

describe('MemoryBudget', () => {
  it('refuses a limit that is not a whole number of bytes, naming the option', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      let caught: unknown;
      try {
        new MemoryBudget(bad);
      } catch (error) {
        caught = error;
      }
      expect(isStorageConfigError(caught)).toBe(true);
      expect((caught as { option?: string }).option).toBe('memoryBudget');
    }
  });

  it('serves waiters first come, first served, and lets an abort leave the line', async () => {
    const budget = new MemoryBudget(10);
    await budget.reserve(8);
    const order: string[] = [];
    const a = budget.reserve(5).then(() => order.push('a'));
    const controller = new AbortController();
    const b = budget.reserve(2, controller.signal).catch((error: unknown) => {
      order.push(error instanceof StorageAbortedError ? 'b aborted' : 'b?');
    });
    // c fits now, but waits behind a: no overtaking.
    const c = budget.reserve(1).then(() => order.push('c'));
    expect(budget.tryReserve(1)).toBe(false);
    controller.abort(new Error('gone'));
    await b;
    expect(budget.stats.waiting).toBe(2);
    budget.release(8);
    await Promise.all([a, c]);
    expect(order).toEqual(['b aborted', 'a', 'c']);
    expect(budget.stats).toMatchObject({ used: 6, peak: 8, waiting: 0 });
  });

  it('grants a reservation larger than the whole budget when nothing else is held', async () => {
    const budget = new MemoryBudget(10);
    await budget.reserve(50);
    expect(budget.stats.used).toBe(50);
    const next = budget.reserve(1);
    expect(budget.stats.waiting).toBe(1);
    budget.release(50);
    await next;
    expect(budget.stats.used).toBe(1);
  });
});

describe('PartReader and uploadAll under a budget', () => {
  it('50 concurrent saves never hold more than the budget, and every byte arrives in order', async () => {
    const budget = new MemoryBudget(6 * PART);
    const sizes = Array.from({ length: 50 }, (_, i) => (i % 5) * PART + 1000 * i + 1);
    const hashes = await Promise.all(sizes.map((size, i) => fakeSave(budget, size, i)));
    expect(hashes).toEqual(await Promise.all(sizes.map((size, i) => expected(size, i))));
    expect(budget.stats.peak).toBeLessThanOrEqual(6 * PART);
    // It was spent (saves waited), and it all came back.
    expect(budget.stats.peak).toBe(6 * PART);
    expect(budget.stats).toMatchObject({ used: 0, waiting: 0 });
    // Buffers are reused while the budget is busy: never more alive than fit in it.
    expect(budget.stats.buffersAllocated).toBeLessThan(sizes.reduce((n, size) => n + Math.ceil(size / PART), 0));
  });

  it('does not deadlock when every save holds a full first part and the budget has no room for a second', async () => {
    // Four saves, room for four parts: each takes one, none can read ahead, all finish.
    const budget = new MemoryBudget(4 * PART);
    const hashes = await Promise.all([0, 1, 2, 3].map((seed) => fakeSave(budget, 3 * PART + 7, seed, { delayMs: 5 })));
    expect(hashes).toEqual(await Promise.all([0, 1, 2, 3].map((seed) => expected(3 * PART + 7, seed))));
    expect(budget.stats.peak).toBeLessThanOrEqual(4 * PART);
    expect(budget.stats.used).toBe(0);
  });

  it('completes a lone save larger than the budget, one part at a time', async () => {
    const budget = new MemoryBudget(2 * PART);
    expect(await fakeSave(budget, 9 * PART + 3, 7)).toBe(await expected(9 * PART + 3, 7));
    expect(budget.stats.peak).toBeLessThanOrEqual(2 * PART);
    // A budget smaller than one part: the save still runs, alone.
    const tiny = new MemoryBudget(1000);
    expect(await fakeSave(tiny, 3 * PART, 8)).toBe(await expected(3 * PART, 8));
    expect(tiny.stats).toMatchObject({ used: 0, peak: PART });
  });

  it('returns every reservation of a save that fails or is aborted mid-way', async () => {
    const budget = new MemoryBudget(3 * PART);
    await expect(fakeSave(budget, 8 * PART, 1, { failAt: 3 })).rejects.toThrow(/part 3 refused/u);
    expect(budget.stats.used).toBe(0);
    const controller = new AbortController();
    const saving = fakeSave(budget, 20 * PART, 2, { delayMs: 20, signal: controller.signal });
    // And one waiting in line when the abort comes.
    const waitingController = new AbortController();
    const waiting = fakeSave(budget, 20 * PART, 3, { delayMs: 20, signal: waitingController.signal });
    await sleep(30);
    controller.abort(new Error('user left'));
    waitingController.abort(new Error('user left too'));
    await expect(saving).rejects.toThrow();
    await expect(waiting).rejects.toThrow();
    expect(budget.stats).toMatchObject({ used: 0, waiting: 0 });
  });

  it('slices bytes already in memory without reserving anything', async () => {
    const budget = new MemoryBudget(1);
    const bytes = Buffer.alloc(3 * PART + 5, 7);
    const reader = new PartReader(normalizeContent(bytes), PART, budget);
    const sizes: number[] = [];
    for (let part = await reader.next(new AbortController().signal); part !== undefined; part = await reader.next(new AbortController().signal)) {
      if (part === 'busy') throw new Error('bytes are never busy');
      sizes.push(part.body.length);
      expect(budget.stats.used).toBe(0);
    }
    expect(sizes).toEqual([PART, PART, PART, 5]);
  });

  it('reads a stream that ends exactly on a part boundary as whole parts, and empty content as one empty part', async () => {
    const budget = new MemoryBudget(8 * PART);
    const read = async (size: number): Promise<number[]> => {
      const reader = new PartReader(normalizeContent(patternStream(size)), PART, budget);
      const sizes: number[] = [];
      for (let part = await reader.next(new AbortController().signal); part !== undefined; part = await reader.next(new AbortController().signal)) {
        if (part === 'busy') throw new Error('unexpected busy');
        sizes.push(part.body.length);
        part.release(true);
      }
      await reader.close();
      return sizes;
    };
    expect(await read(2 * PART)).toEqual([PART, PART]);
    expect(await read(0)).toEqual([0]);
    expect(budget.stats.used).toBe(0);
  });
});
