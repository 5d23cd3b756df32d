/**
 * The relay's HTTP client: a `fetch`-shaped function over node:http / node:https, with
 * keep-alive agents and the destination guard applied to the address actually connected.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { WebhookDestinationError } from '../errors.js';
import type { FetchLike } from './deliver.js';
import { destinationHost, nonPublicReason } from './destination-guard.js';

/** Options of {@link createWebhookFetch}. */
export interface WebhookFetchOptions {
  /**
   * Deliver to loopback, private, link-local and other non-public addresses too. Leave it off in
   * production: an endpoint URL is user input, and without the guard it can reach your internal
   * network (SSRF). Turn it on for development and trusted networks, e.g. a receiver on localhost.
   * @default false
   */
  allowPrivateNetworks?: boolean;
  /**
   * Keep connections open between deliveries, so the relay's many small POSTs to one endpoint
   * reuse a socket (and a TLS session) instead of opening one each.
   * @default true
   */
  keepAlive?: boolean;
  /**
   * How hostnames are resolved. The guard filters whatever it returns, so a custom resolver
   * cannot route around it.
   * @default dns.lookup
   */
  lookup?: LookupFunction;
}

// A body the caller cancels is drained (so its socket can be reused) when it is at most this
// long and arrives within this time; a longer, unbounded or slower one is cut instead.
const DRAIN_LIMIT_BYTES = 64 * 1024;
const DRAIN_TIMEOUT_MS = 1000;

/**
 * Create the `fetch` the relay posts with. It honours `method`, `headers`, a string or byte
 * `body`, `signal` (rejecting with the signal's reason, so a timeout is a `TimeoutError`) and
 * never follows a redirect: a 3xx is returned as is (`redirect: 'error'` rejects instead). It
 * resolves to a standard `Response` with the status, headers and body stream.
 *
 * With the guard on (the default) it refuses a destination whose address is not public
 * ({@link nonPublicReason}): an IP literal before connecting, a hostname's resolved addresses
 * (the non-public ones are dropped; if none is left it fails), and, as a last line, the socket's
 * remote address on connect. The rejection is a {@link WebhookDestinationError}; nothing is sent.
 *
 * Each call creates its own agents; create one fetch per relay, not one per request. Proxy
 * environment variables (`HTTP_PROXY`, …) are ignored, like Node's own `fetch`.
 *
 * @example
 * ```ts
 * const relay = new OutboxRelay({ store, fetch: createWebhookFetch() });
 * // The portal's demo receiver on localhost:
 * const devRelay = new OutboxRelay({ store, fetch: createWebhookFetch({ allowPrivateNetworks: true }) });
 * ```
 */
export function createWebhookFetch(options: WebhookFetchOptions = {}): FetchLike {
  const guard = options.allowPrivateNetworks !== true;
  const agentOptions = { keepAlive: options.keepAlive ?? true };
  const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) };
  const baseLookup: LookupFunction = options.lookup ?? dnsLookup;
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined;
      if (signal?.aborted === true) return reject(signal.reason);
      let target: URL;
      try {
        target = new URL(url);
      } catch (cause) {
        return reject(new TypeError('Invalid webhook URL.', { cause }));
      }
      if (target.protocol !== 'http:' && target.protocol !== 'https:') {
        return reject(new TypeError(`Unsupported webhook URL protocol ${target.protocol} (use http: or https:).`));
      }
      const host = destinationHost(target);
      if (guard && isIP(host) !== 0) {
        // Refuse before connecting: not even a TCP handshake, so refusals do not reveal open ports.
        const reason = nonPublicReason(host);
        if (reason !== undefined) return reject(new WebhookDestinationError(url, reason, { address: host }));
      }
      let body: Buffer | undefined;
      try {
        body = toBuffer(init.body);
      } catch (error) {
        return reject(error);
      }
      const headers = Object.fromEntries(new Headers(init.headers));
      if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
      const method = (init.method ?? 'GET').toUpperCase();
      const lookup = guard ? guardedLookup(url, baseLookup) : options.lookup;

      let response: IncomingMessage | undefined;
      let settled = false;
      let req: http.ClientRequest | undefined;
      const onAbort = (): void => {
        const reason: unknown = signal?.reason;
        // After the headers, an abort cuts the body stream, as with fetch.
        if (response !== undefined) response.destroy(reason instanceof Error ? reason : undefined);
        else req?.destroy(reason instanceof Error ? reason : undefined);
        fail(reason);
      };
      const cleanup = (): void => signal?.removeEventListener('abort', onAbort);
      const fail = (error: unknown): void => {
        if (settled) return;
        settled = true;
        cleanup();
        reject(error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });

      const client = target.protocol === 'https:' ? https : http;
      const agent = agents[target.protocol];
      const send = (retried: boolean): void => {
        const request = client.request({
          agent,
          hostname: host,
          port: target.port === '' ? undefined : Number(target.port),
          path: `${target.pathname}${target.search}`,
          method,
          headers,
          ...(lookup === undefined ? {} : { lookup }),
          ...(target.username !== '' || target.password !== ''
            ? { auth: `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}` }
            : {}),
        });
        req = request;
        request.on('error', (error: NodeJS.ErrnoException) => {
          // A kept-alive socket the server closed while it sat idle (its FIN not yet seen here):
          // nothing was processed, so send once more on a new connection, as Node's docs advise.
          // https://nodejs.org/api/http.html#requestreusedsocket
          if (!retried && !settled && response === undefined && request.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
            return send(true);
          }
          fail(error);
        });
        if (guard) request.on('socket', (socket: Socket) => refuseNonPublicSocket(socket, url, (error) => request.destroy(error)));
        request.on('response', (res) => {
          response = res;
          res.once('close', cleanup);
          if (settled) return void res.destroy();
          settled = true;
          const status = res.statusCode ?? 0;
          if (init.redirect === 'error' && status >= 300 && status < 400) {
            res.destroy();
            return reject(new TypeError(`The webhook endpoint answered with a redirect (HTTP ${status}) and redirect is 'error'.`));
          }
          try {
            resolve(toResponse(res, method));
          } catch (error) {
            res.destroy();
            reject(error);
          }
        });
        request.end(body);
      };
      send(false);
    });
}

/**
 * Check the address a socket connected to (on `connect`, or now for a reused keep-alive socket);
 * if it is not public, call `refuse` with a {@link WebhookDestinationError}. Runs before the
 * socket's queued writes, so no request bytes leave. Exported for tests.
 * @internal
 */
export function refuseNonPublicSocket(socket: Socket, url: string, refuse: (error: WebhookDestinationError) => void): void {
  const check = (): void => {
    const address = socket.remoteAddress;
    const reason = address === undefined ? 'unknown address' : nonPublicReason(address);
    if (reason !== undefined) refuse(new WebhookDestinationError(url, reason, { address }));
  };
  if (socket.connecting) socket.once('connect', check);
  else check();
}

/** Resolve with `base`, keep only public addresses; none left is a {@link WebhookDestinationError}. */
function guardedLookup(url: string, base: LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    base(hostname, { ...options, all: true }, (error, result, family) => {
      if (error !== null) return callback(error, '');
      const all: LookupAddress[] = Array.isArray(result) ? result : [{ address: result, family: family ?? isIP(result) }];
      const allowed = all.filter(({ address }) => nonPublicReason(address) === undefined);
      const first = allowed[0];
      if (first === undefined) {
        const refused = all[0];
        const reason = refused === undefined ? 'no address' : (nonPublicReason(refused.address) ?? 'no address');
        return callback(new WebhookDestinationError(url, reason, { address: refused?.address }), '');
      }
      if (options.all === true) callback(null, allowed);
      else callback(null, first.address, first.family);
    });
  };
}

function toBuffer(body: RequestInit['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('The webhook fetch sends a string or bytes as body; serialise other bodies first.');
}

function toResponse(res: IncomingMessage, method: string): Response {
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 599) throw new TypeError(`The webhook endpoint answered with an invalid HTTP status ${status}.`);
  const headers = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    try {
      headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
    } catch {
      // A header the Headers class refuses is dropped: the relay reads only the status.
    }
  }
  const nullBody = method === 'HEAD' || status === 204 || status === 205 || status === 304;
  if (nullBody) res.resume();
  const body = nullBody ? null : bodyStream(res);
  try {
    return new Response(body, { status, statusText: res.statusMessage ?? '', headers });
  } catch {
    // A reason phrase the Response class refuses.
    return new Response(body, { status, headers });
  }
}

function bodyStream(res: IncomingMessage): ReadableStream<Uint8Array> {
  let done = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      res.on('data', (chunk: Buffer) => {
        if (done) return;
        controller.enqueue(chunk);
        if ((controller.desiredSize ?? 0) <= 0) res.pause();
      });
      res.once('end', () => {
        if (done) return;
        done = true;
        controller.close();
      });
      res.once('error', (error) => {
        if (done) return;
        done = true;
        controller.error(error);
      });
      res.once('close', () => {
        if (done) return;
        done = true;
        controller.error(new Error('The webhook endpoint closed the connection before the response ended.'));
      });
    },
    pull() {
      res.resume();
    },
    cancel() {
      done = true;
      // Drain a short answer so the keep-alive socket goes back to the pool before the next
      // request wants one; cut a long, unbounded or stalled one.
      if (res.readableEnded || res.destroyed) return;
      const length = Number(res.headers['content-length']);
      if (!res.complete && !(Number.isFinite(length) && length <= DRAIN_LIMIT_BYTES)) return void res.destroy();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => res.destroy(), DRAIN_TIMEOUT_MS).unref();
        const finish = (): void => {
          clearTimeout(timer);
          resolve();
        };
        res.once('end', finish);
        res.once('close', finish);
        res.resume();
      });
    },
  });
}
