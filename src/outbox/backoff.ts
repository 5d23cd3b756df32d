/** Base of the retry schedule: 60 s after the first failed attempt, doubling. */
export const RETRY_BASE_SECONDS = 60;
/** The longest wait between attempts: one hour. */
export const RETRY_MAX_SECONDS = 3600;
/** Up to this fraction is added at random, so that retries of many events spread out. */
export const RETRY_JITTER = 0.1;

/**
 * Wait before the next attempt, after `attempts` attempts failed:
 * `min(60 · 2^(attempts − 1), 3600)` seconds plus up to 10 % jitter.
 *
 * @param random a number in [0, 1) (`Math.random` by default)
 */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number {
  const seconds = Math.min(RETRY_BASE_SECONDS * 2 ** Math.max(0, attempts - 1), RETRY_MAX_SECONDS);
  return Math.round(seconds * 1000 * (1 + RETRY_JITTER * random()));
}
