/**
 * Retrying a step that must eventually happen (a clean-up after a failed write) for a bounded
 * time, with exponential backoff and jitter.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** Give up once this many milliseconds have passed since the first attempt. */
  timeoutMs: number;
  /** @default 100 */
  initialDelayMs?: number;
  /** @default 2000 */
  maxDelayMs?: number;
  /** Whether an error is worth another attempt. @default every error is */
  retryable?: (error: unknown) => boolean;
}

/**
 * Call `attempt` until it resolves or `timeoutMs` has passed, waiting 100 ms, 200 ms, 400 ms …
 * (at most 2 s, ±20 %) between attempts. Each attempt gets a signal that fires at the deadline,
 * so a hung request cannot outlive it. Rejects with the last attempt's error.
 */
export async function retryFor<T>(attempt: (signal: AbortSignal) => Promise<T>, options: RetryOptions): Promise<T> {
  const deadline = AbortSignal.timeout(Math.max(1, options.timeoutMs));
  const started = Date.now();
  let delay = options.initialDelayMs ?? 100;
  const maxDelay = options.maxDelayMs ?? 2000;
  for (;;) {
    try {
      return await attempt(deadline);
    } catch (error) {
      const left = options.timeoutMs - (Date.now() - started);
      if (deadline.aborted || left <= 0 || options.retryable?.(error) === false) throw error;
      const wait = Math.min(left, delay * (0.8 + Math.random() * 0.4));
      await sleep(wait);
      delay = Math.min(maxDelay, delay * 2);
    }
  }
}
