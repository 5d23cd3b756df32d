/** retryFor: the backoff loop behind the clean-up after a failed save. */
import { describe, expect, it } from 'vitest';
import { retryFor } from '../../src/retry.js';

describe('retryFor', () => {
  it('tries again until the step succeeds, with growing waits', async () => {
    const at: number[] = [];
    const result = await retryFor(
      async () => {
        at.push(performance.now());
        if (at.length < 4) throw new Error(`attempt ${at.length}`);
        return 'done';
      },
      { timeoutMs: 10_000, initialDelayMs: 50, maxDelayMs: 1000 },
    );
    expect(result).toBe('done');
    expect(at).toHaveLength(4);
    const waits = at.slice(1).map((t, i) => t - (at[i] ?? 0));
    // 50, 100, 200 ms ± 20 %: the third wait at least 160 ms, the first at most 60 ms (timers only run late).
    expect(waits[0]).toBeGreaterThanOrEqual(39);
    expect(waits[2]).toBeGreaterThanOrEqual(159);
    expect(waits[2]).toBeGreaterThan(waits[0] ?? 0);
  });

  it('stops at once on an error that is not worth another attempt', async () => {
    let attempts = 0;
    const refused = new Error('403 AccessDenied');
    await expect(
      retryFor(
        async () => {
          attempts += 1;
          throw refused;
        },
        { timeoutMs: 10_000, initialDelayMs: 10, retryable: (error) => error !== refused },
      ),
    ).rejects.toBe(refused);
    expect(attempts).toBe(1);
  });

  it('gives up with the last error once the time is spent, and the deadline reaches the step', async () => {
    let attempts = 0;
    let signal: AbortSignal | undefined;
    const error = await retryFor(
      async (deadline) => {
        signal = deadline;
        attempts += 1;
        throw new Error(`attempt ${attempts}`);
      },
      { timeoutMs: 150, initialDelayMs: 20, maxDelayMs: 40 },
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe(`attempt ${attempts}`);
    expect(attempts).toBeGreaterThan(1);
    // The signal each attempt gets fires at the deadline (a hung request cannot outlive it).
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(signal?.aborted).toBe(true);
  });
});
