/** One webhook POST: signed, timed out, its outcome described without secrets. */
import type { OutboxDelivery, WebhookEndpoint } from '../upload/model.js';
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
 * The request headers of one attempt: Standard Webhooks' `webhook-id` (the event id, the same on
 * every attempt), `webhook-timestamp` and `webhook-signature`, plus `x-webhook-event`.
 */
export function deliveryHeaders(event: Pick<OutboxDelivery, 'id' | 'eventType'>, body: string, secret: string, options: SignOptions): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'doorito-storage-outbox-relay',
    'x-webhook-event': event.eventType,
    'webhook-id': event.id,
    'webhook-timestamp': String(options.timestamp),
    'webhook-signature': signWebhook(event.id, options.timestamp, body, secret),
    ...(options.legacySignatureHeaders === true ? { 'x-webhook-delivery': event.id, 'x-webhook-signature': signWebhookBody(body, secret) } : {}),
  };
}

function describeFailure(error: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `timed out after ${timeoutMs} ms`;
  // fetch reports network errors as TypeError('fetch failed') with the system error as cause.
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * POST `body` to `endpoint`. Never throws: a failure is an `ok: false` result. When `signal`
 * (the relay's own) aborts, the request is cut; the caller then records nothing.
 */
export async function postToEndpoint(
  fetchFn: FetchLike,
  endpoint: WebhookEndpoint,
  event: OutboxDelivery,
  body: string,
  options: { timeoutMs: number; signal: AbortSignal } & SignOptions,
): Promise<EndpointResult> {
  const url = printableUrl(endpoint.url);
  const timeout = AbortSignal.timeout(options.timeoutMs);
  try {
    const response = await fetchFn(endpoint.url, {
      method: 'POST',
      headers: deliveryHeaders(event, body, endpoint.secret, options),
      body,
      // A redirect is not a delivery; following one would turn the POST into a GET.
      redirect: 'manual',
      signal: AbortSignal.any([options.signal, timeout]),
    });
    // Free the connection; the answer's body is not used.
    await response.body?.cancel().catch(() => undefined);
    const ok = response.status >= 200 && response.status < 300;
    return { endpointId: endpoint.id, url, ok, status: response.status, ...(ok ? {} : { error: `HTTP ${response.status}` }) };
  } catch (error) {
    return { endpointId: endpoint.id, url, ok: false, error: describeFailure(error, timeout.aborted && !options.signal.aborted, options.timeoutMs) };
  }
}
