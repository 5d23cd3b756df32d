/** One webhook POST: signed, timed out, its outcome described without secrets. */
import type { OutboxEvent, WebhookEndpoint } from '../upload/model.js';
import { isWebhookDestinationError } from '../errors.js';
import { parseRetryAfter } from './backoff.js';
import { signWebhookBody } from './signature.js';
import { signWebhook } from './standard-webhooks.js';

/** The `fetch` the relay uses; the global one by default. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** What one endpoint answered. */
export interface EndpointResult {
  endpointId: string;
  /** The endpoint's origin and path: its query string may hold a token, so it is left out. */
  url: string;
  ok: boolean;
  /** The HTTP status, when a response came. */
  status?: number;
  /** Why it failed: `HTTP 500`, `timed out after 30000 ms`, `ECONNREFUSED`, … */
  error?: string;
  /** From the start of the request to its answer (or failure). */
  durationMs: number;
  /** The wait a 429 or 503 asked for with `Retry-After`. */
  retryAfterMs?: number;
}

/** The endpoint URL as we print it: no credentials, no query, no fragment. */
export function printableUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** How {@link deliveryHeaders} signs one attempt. */
export interface SignOptions {
  /** This attempt's `webhook-timestamp`: integer seconds since the epoch. */
  timestamp: number;
  /** Add the deprecated `x-webhook-delivery` and `x-webhook-signature`. @default false */
  legacySignatureHeaders?: boolean;
}

/**
 * The secrets an attempt at `now` is signed with: the endpoint's secret, and its previous one
 * while the rotation's overlap lasts.
 */
export function signingSecrets(endpoint: Pick<WebhookEndpoint, 'secret' | 'previousSecret' | 'previousSecretExpiresAt'>, now: Date): string[] {
  const overlap = endpoint.previousSecret !== undefined && endpoint.previousSecretExpiresAt !== undefined && endpoint.previousSecretExpiresAt > now;
  return overlap ? [endpoint.secret, endpoint.previousSecret as string] : [endpoint.secret];
}

/**
 * The request headers of one attempt: Standard Webhooks' `webhook-id` (the event id, the same on
 * every attempt and every endpoint), `webhook-timestamp` and `webhook-signature` (one `v1,…` per
 * secret, space-separated), plus `x-webhook-event`.
 */
export function deliveryHeaders(event: Pick<OutboxEvent, 'id' | 'eventType'>, body: string, secret: string | readonly string[], options: SignOptions): Record<string, string> {
  const secrets = typeof secret === 'string' ? [secret] : secret;
  return {
    'content-type': 'application/json',
    'user-agent': 'doorito-storage-outbox-relay',
    'x-webhook-event': event.eventType,
    'webhook-id': event.id,
    'webhook-timestamp': String(options.timestamp),
    'webhook-signature': signWebhook(event.id, options.timestamp, body, secrets),
    ...(options.legacySignatureHeaders === true ? { 'x-webhook-delivery': event.id, 'x-webhook-signature': signWebhookBody(body, secrets[0] ?? '') } : {}),
  };
}

function describeFailure(error: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `timed out after ${timeoutMs} ms`;
  const refused = [error, error instanceof Error ? error.cause : undefined].find(isWebhookDestinationError);
  if (refused !== undefined) return `destination refused: ${refused.address ?? new URL(refused.url).hostname} is ${refused.reason} (allowPrivateNetworks is off)`;
  // fetch reports network errors as TypeError('fetch failed') with the system error as cause.
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * POST `body` to `endpoint`, signed with {@link signingSecrets} at `now`. Never throws: a failure
 * is an `ok: false` result. When `signal` (the relay's own) aborts, the request is cut; the
 * caller then records nothing.
 */
export async function postToEndpoint(
  fetchFn: FetchLike,
  endpoint: WebhookEndpoint,
  event: Pick<OutboxEvent, 'id' | 'eventType'>,
  body: string,
  options: {
    timeoutMs: number;
    /** Cuts the request: the relay's kill switch, or the timeout. */
    signal: AbortSignal;
    /** The timeout (also in `signal`): when it has fired, the failure is a time-out. @default a new AbortSignal.timeout(timeoutMs), added to `signal` */
    timedOut?: AbortSignal;
    now: Date;
  } & SignOptions,
): Promise<EndpointResult> {
  const url = printableUrl(endpoint.url);
  const timeout = options.timedOut ?? AbortSignal.timeout(options.timeoutMs);
  const signal = options.timedOut === undefined ? AbortSignal.any([options.signal, timeout]) : options.signal;
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const response = await fetchFn(endpoint.url, {
      method: 'POST',
      headers: deliveryHeaders(event, body, signingSecrets(endpoint, options.now), options),
      body,
      // A redirect is not a delivery; following one would turn the POST into a GET.
      redirect: 'manual',
      signal,
    });
    // Free the connection; the answer's body is not used.
    await response.body?.cancel().catch(() => undefined);
    const ok = response.status >= 200 && response.status < 300;
    const result: EndpointResult = { endpointId: endpoint.id, url, ok, status: response.status, durationMs: elapsed() };
    if (!ok) result.error = `HTTP ${response.status}`;
    if (response.status === 429 || response.status === 503) {
      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), options.now);
      if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
    }
    return result;
  } catch (error) {
    return { endpointId: endpoint.id, url, ok: false, error: describeFailure(error, timeout.aborted, options.timeoutMs), durationMs: elapsed() };
  }
}
