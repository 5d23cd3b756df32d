/**
 * The retry schedule of a delivery, and the `Retry-After` a receiver may ask for.
 * Standard Webhooks suggests, and Svix uses, about a day of retries:
 * https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#retry-schedule
 */

/**
 * The default waits before the 2nd, 3rd, … attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
 * With the first attempt, 8 attempts over about 27.6 hours.
 */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = Object.freeze([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);

/** Up to this fraction of a wait is added at random, so that retries of many deliveries spread out. */
export const RETRY_JITTER = 0.1;

/** The longest `Retry-After` honoured (one day); a longer one waits this long. */
export const MAX_RETRY_AFTER_MS = 86_400_000;

/**
 * Wait before the next attempt, after `attempts` attempts failed: `delays[attempts − 1]` (the
 * last one when past the end) plus up to `jitter` of it.
 *
 * @param random a number in [0, 1) (`Math.random` by default)
 * @example retryDelayMs(1) // 5000–5500: the wait after the first failed attempt
 */
export function retryDelayMs(attempts: number, random: () => number = Math.random, delays: readonly number[] = DEFAULT_RETRY_DELAYS_MS, jitter = RETRY_JITTER): number {
  const base = delays[Math.min(Math.max(attempts, 1), delays.length) - 1] ?? 0;
  return Math.round(base * (1 + jitter * random()));
}

/**
 * The wait a `Retry-After` header asks for, in ms: delta-seconds or an HTTP-date; undefined
 * when absent or unreadable. https://www.rfc-editor.org/rfc/rfc9110#field.retry-after
 */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/u.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP-date ends in GMT (IMF-fixdate and the obsolete forms); Date.parse alone takes '1.5' for a date.
  const at = /\bGMT$/u.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}
