/**
 * The memory budget against the real servers: many concurrent streamed saves through one
 * storage (and two storages sharing a budget) never reserve more than the budget, every object
 * is whole, a lone save larger than the budget completes, and an aborted save gives its memory
 * back and leaves nothing.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, expect, it } from 'vitest';
import { StorageAbortedError } from '../../src/errors.js';
import { MemoryBudget } from '../../src/storage/s3/index.js';
import type { S3Storage } from '../../src/storage/s3/index.js';
import { PART, s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { describeS3, rawClient } from '../helpers/s3-env.js';
import { patternStream, sha256 } from '../helpers/streams.js';

describeS3('S3Storage memory budget', (env) => {
  const client = rawClient(env);
  const location = `budget-${randomUUID()}`;
  const storages: S3Storage[] = [];
  const storage = (options: Parameters<typeof s3StorageFor>[1]): S3Storage => {
    const made = s3StorageFor(env, { location, ...options });
    storages.push(made);
    return made;
  };
  afterEach(async () => {
    await Promise.all(storages.map((s) => s.drain()));
    await s3Cleanup(client, env.bucket, `${location}/`);
  });
  afterAll(() => {
    for (const s of storages) s.destroy();
    client.destroy();
  });

  const SIZES = [1024, 2 * PART + 17, PART + 3, 3 * PART - 1];

  async function expectWhole(target: S3Storage, key: string, size: number, seed: number): Promise<void> {
    expect(await sha256(await target.open(key))).toBe(await sha256(patternStream(size, seed)));
  }

  it('40 concurrent streamed saves never reserve more than the budget, and every object is whole', async () => {
    const limit = 4 * PART;
    const s3 = storage({ memoryBudget: limit, queueSize: 4 });
    const sizes = Array.from({ length: 40 }, (_, i) => SIZES[i % SIZES.length] as number);
    const saved = await Promise.all(sizes.map((size, i) => s3.save(`many/${i}.bin`, patternStream(size, i))));
    expect(saved.map((r) => r.size)).toEqual(sizes);
    const { stats } = s3.memoryBudget;
    expect(stats.peak).toBeLessThanOrEqual(limit);
    // Saves had to wait: the budget was spent, not merely large enough.
    expect(stats.peak).toBe(limit);
    expect(stats).toMatchObject({ used: 0, waiting: 0 });
    for (const [i, size] of sizes.entries()) await expectWhole(s3, `many/${i}.bin`, size, i);
  });

  it('shares one budget between two storages', async () => {
    const budget = new MemoryBudget(3 * PART);
    const a = storage({ memoryBudget: budget });
    const b = storage({ memoryBudget: budget, fileOverwrite: true });
    expect(a.memoryBudget).toBe(b.memoryBudget);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).save(`shared/${i}.bin`, patternStream(2 * PART + i, 100 + i))),
    );
    expect(budget.stats.peak).toBeLessThanOrEqual(3 * PART);
    expect(budget.stats.used).toBe(0);
    for (let i = 0; i < 10; i += 1) await expectWhole(a, `shared/${i}.bin`, 2 * PART + i, 100 + i);
  });

  it('completes a lone save larger than the budget, and one with a budget smaller than a part', async () => {
    const narrow = storage({ memoryBudget: PART + 1 });
    await narrow.save('lone/narrow.bin', patternStream(5 * PART + 9, 5));
    expect(narrow.memoryBudget.stats).toMatchObject({ used: 0, peak: PART });
    await expectWhole(narrow, 'lone/narrow.bin', 5 * PART + 9, 5);
    const tiny = storage({ memoryBudget: 1024 });
    await tiny.save('lone/tiny.bin', patternStream(2 * PART + 1, 6));
    expect(tiny.memoryBudget.stats).toMatchObject({ used: 0, peak: PART });
    await expectWhole(tiny, 'lone/tiny.bin', 2 * PART + 1, 6);
  });

  it('gives back the memory of an aborted save, and of saves waiting in line, and leaves nothing', async () => {
    const s3 = storage({ memoryBudget: 2 * PART });
    const controller = new AbortController();
    const saves = [0, 1, 2].map((i) =>
      s3.save(`aborted/${i}.bin`, patternStream(20 * PART, 200 + i), { signal: controller.signal }).then(
        () => 'saved',
        (error: unknown) => (error instanceof StorageAbortedError ? 'aborted' : String(error)),
      ),
    );
    // Wait until the budget is spent and a save is in line.
    for (let i = 0; i < 200 && s3.memoryBudget.stats.waiting === 0; i += 1) await sleep(10);
    expect(s3.memoryBudget.stats.waiting).toBeGreaterThan(0);
    controller.abort(new Error('the user left'));
    expect(await Promise.all(saves)).toEqual(['aborted', 'aborted', 'aborted']);
    await s3.drain();
    expect(s3.memoryBudget.stats).toMatchObject({ used: 0, waiting: 0 });
    expect(await s3Leftovers(client, env.bucket, `${location}/aborted/`)).toEqual([]);
  });
});
