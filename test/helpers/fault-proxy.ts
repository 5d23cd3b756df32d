/**
 * A fault-injecting HTTP proxy for fault tests. It listens on 127.0.0.1 (ephemeral port) between
 * an S3 client (the AWS SDK v3: path-style, plain http, keep-alive, SigV4) and a real S3 server on
 * loopback, forwards every request faithfully (method, path and query, headers including Host,
 * bodies streamed both ways, status, trailers), and injects one fault into each request a rule
 * matches: a reset mid-body, a lost response, a stall, an S3 error status, a refused connection.
 *
 * Host is forwarded unchanged, so signatures stay valid: the client signs for the proxy's
 * `endpoint`, and that is the Host the server sees. The proxy never connects anywhere but
 * 127.0.0.1 or ::1.
 *
 * ```ts
 * const proxy = await FaultProxy.start('http://127.0.0.1:7480');
 * const client = new S3Client({ endpoint: proxy.endpoint, forcePathStyle: true, ... });
 * proxy.inject({ op: 'UploadPart', after: 1, fault: { kind: 'reset-after', bytes: 1 << 20 } });
 * ...
 * expect(proxy.count('AbortMultipartUpload')).toBe(1);
 * await proxy.close();
 * ```
 */
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** The S3 operations the proxy tells apart (see {@link s3Operation}); everything else is `'Other'`. */
export type S3Operation =
  | 'PutObject'
  | 'Claim'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'HeadObject'
  | 'GetObject'
  | 'DeleteObject'
  | 'DeleteObjects'
  | 'ListObjectsV2'
  | 'ListMultipartUploads'
  | 'ListParts'
  | 'CopyObject'
  | 'Other';

/** The user-metadata header our S3 storage puts on a name claim (src/storage/s3: `CLAIM_METADATA`). */
const CLAIM_HEADER = 'x-amz-meta-doorito-claim';

/**
 * Sub-resources that make a request on a bucket or key some other operation than the plain one
 * (GET /b/k?acl is GetObjectAcl, not GetObject).
 */
const OTHER_SUBRESOURCES = new Set([
  'accelerate', 'acl', 'analytics', 'attributes', 'cors', 'encryption', 'intelligent-tiering',
  'inventory', 'legal-hold', 'lifecycle', 'location', 'logging', 'metrics', 'notification',
  'object-lock', 'ownershipControls', 'policy', 'policyStatus', 'publicAccessBlock', 'replication',
  'requestPayment', 'restore', 'retention', 'select', 'tagging', 'torrent', 'versioning', 'versions',
  'website',
]);

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : headers[key];
  }
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Classify a request by method, path (path-style: `/bucket` or `/bucket/key`), query and headers,
 * the way the AWS SDK v3 shapes them (`?uploads`, `?uploadId=`, `?partNumber=`, `?delete`,
 * `?list-type=2`; the SDK's `x-id` hint is not needed and not trusted).
 *
 * - `'Claim'` is a PutObject of zero bytes (`content-length: 0`, or `x-amz-decoded-content-length: 0`
 *   for an aws-chunked body) with an `x-amz-meta-doorito-claim` header;
 * - `'CopyObject'` is a PUT with `x-amz-copy-source` (UploadPartCopy counts as `'UploadPart'`);
 * - bucket-level and sub-resource requests (`?acl`, `?tagging`, `?versions`, ListObjects v1,
 *   ListBuckets, CreateBucket, …) are `'Other'`.
 */
export function s3Operation(req: { method: string; url: string; headers: IncomingHttpHeaders }): S3Operation {
  let url: URL;
  try {
    url = new URL(req.url, 'http://proxy.invalid');
  } catch {
    return 'Other';
  }
  const query = url.searchParams;
  const path = url.pathname.replace(/^\/+/u, '');
  const slash = path.indexOf('/');
  const hasKey = slash > 0 && slash < path.length - 1;
  const method = req.method.toUpperCase();
  if ([...query.keys()].some((name) => OTHER_SUBRESOURCES.has(name))) return 'Other';
  if (path === '') return 'Other';
  if (!hasKey) {
    if (method === 'GET' && query.has('uploads')) return 'ListMultipartUploads';
    if (method === 'GET' && query.get('list-type') === '2') return 'ListObjectsV2';
    if (method === 'POST' && query.has('delete')) return 'DeleteObjects';
    return 'Other';
  }
  switch (method) {
    case 'PUT': {
      if (query.has('uploadId') && query.has('partNumber')) return 'UploadPart';
      if (query.has('uploadId') || query.has('partNumber')) return 'Other';
      if (header(req.headers, 'x-amz-copy-source') !== undefined) return 'CopyObject';
      const length = header(req.headers, 'x-amz-decoded-content-length') ?? header(req.headers, 'content-length');
      if (length !== undefined && Number(length) === 0 && header(req.headers, CLAIM_HEADER) !== undefined) return 'Claim';
      return 'PutObject';
    }
    case 'POST':
      if (query.has('uploads')) return 'CreateMultipartUpload';
      if (query.has('uploadId')) return 'CompleteMultipartUpload';
      return 'Other';
    case 'GET':
      return query.has('uploadId') ? 'ListParts' : 'GetObject';
    case 'HEAD':
      return query.has('uploadId') ? 'Other' : 'HeadObject';
    case 'DELETE':
      return query.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    default:
      return 'Other';
  }
}

/**
 * One fault, injected into one request:
 * - `reset-after`: forward the request, but once `bytes` bytes of the request body have been
 *   forwarded (and written to the upstream socket), abort the upstream request and reset the
 *   client's connection (the client sees ECONNRESET or EPIPE). `bytes: 0` forwards only the head.
 *   A body shorter than `bytes` is forwarded whole and the exchange completes normally.
 * - `lose-response`: forward the whole request, read the upstream's whole answer, then reset the
 *   client's connection without sending any of it: the write happened, the client never learns.
 * - `stall`: hold the request for `ms` (nothing is forwarded or answered, no more of the body is
 *   read), then forward it normally, unless the client went away meanwhile.
 * - `stall-response`: forward the request, take the upstream's answer, and hold it for `ms`
 *   before sending it on.
 * - `status`: answer at once with `status` and an S3 XML error body
 *   (`<Error><Code>code</Code><Message>message</Message>…</Error>`), forwarding nothing.
 * - `reset`: reset the client's connection as soon as the request head arrives, forwarding nothing.
 * - `delete-errors` (DeleteObjects only): make the server fail to delete some keys, as a server
 *   answering `<Error>` entries for them would. The proxy takes those keys out of the request body
 *   (so the server keeps their objects), fixes `Content-MD5` (if sent), the length and
 *   `x-amz-content-sha256`, drops the CRC32 headers, re-signs with `sign`, forwards the rest, and
 *   adds one `<Error><Key/><Code/><Message/></Error>` per key taken out to the server's
 *   DeleteResult. Keys are full object keys (with any location prefix). A request naming none of
 *   them is forwarded unchanged (it still counts as fired); one naming only them is answered by the
 *   proxy, forwarding nothing. No real server can be made to fail one key of a batch on demand.
 */
export type Fault =
  | { kind: 'reset-after'; bytes: number }
  | { kind: 'lose-response' }
  | { kind: 'stall'; ms: number }
  | { kind: 'stall-response'; ms: number }
  | { kind: 'status'; status: number; code: string; message?: string }
  | { kind: 'reset' }
  | DeleteErrorsFault;

/** One key the `delete-errors` fault makes the server fail to delete, and the error it reports. */
export interface InjectedDeleteError {
  /** The full object key, as it appears in the DeleteObjects body. */
  key: string;
  /** The per-key error code, e.g. `InternalError` (transient) or `AccessDenied`. */
  code: string;
  /** @default a stock message for the code */
  message?: string;
}

/** What `delete-errors` hands its signer: the rewritten request (headers lower-case, `host` included). */
export interface SignableRequest {
  method: string;
  /** Path and query, as the client sent them. */
  url: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Signs a rewritten request: returns its headers with a fresh SigV4 `authorization` and `x-amz-date`. */
export type RequestSigner = (request: SignableRequest) => Promise<Record<string, string>>;

export interface DeleteErrorsFault {
  kind: 'delete-errors';
  errors: ReadonlyArray<InjectedDeleteError>;
  sign: RequestSigner;
}

/** What a rule's predicate and the log see of a request (headers as Node parsed them, lower-case). */
export interface RequestInfo {
  op: S3Operation;
  method: string;
  /** Path and query, exactly as the client sent them. */
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * Inject `fault` into requests that match `op`. Rules are checked in the order they were
 * injected; the first live rule that matches counts the request, and fires unless it is still
 * skipping (`after`); a skipped request goes on to the next rules. Each request gets at most one fault.
 */
export interface FaultRule {
  op: S3Operation | ((req: RequestInfo) => boolean);
  fault: Fault;
  /** How many matching requests get the fault (then the rule is spent); `Infinity` for all. @default 1 */
  times?: number;
  /** Let this many matching requests through untouched first. @default 0 */
  after?: number;
}

/** A rule once injected: how often it has fired, and a way to withdraw it. */
export interface InjectedRule {
  /** How many requests have been given this rule's fault so far. */
  readonly fired: number;
  /** Whether it has fired `times` times (or was removed). */
  readonly spent: boolean;
  /** Withdraw the rule (requests already given its fault are not affected). */
  remove(): void;
}

/** One request the proxy received, with what became of it. Entries are updated as the exchange goes on. */
export interface ProxyLogEntry extends RequestInfo {
  /** The status sent to the client, or, for `lose-response`, the status the upstream answered. */
  status?: number;
  /** The fault this request was given. */
  fault?: Fault['kind'];
  /** Why the exchange broke off other than by its fault: the client went away, or the upstream failed. */
  error?: string;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade']);

const DEFAULT_MESSAGES: Record<string, string> = {
  SlowDown: 'Please reduce your request rate.',
  ServiceUnavailable: 'Service is unable to handle request.',
  InternalError: 'We encountered an internal error. Please try again.',
  RequestTimeout: 'Your socket connection to the server was not read from or written to within the timeout period.',
  NoSuchKey: 'The specified key does not exist.',
  NoSuchUpload: 'The specified multipart upload does not exist.',
  AccessDenied: 'Access Denied',
};

const xmlUnescape = (text: string): string =>
  text.replace(/&(lt|gt|amp|apos|quot|#x[0-9a-fA-F]+|#[0-9]+);/gu, (_, name: string) =>
    name.startsWith('#x')
      ? String.fromCodePoint(Number.parseInt(name.slice(2), 16))
      : name.startsWith('#')
        ? String.fromCodePoint(Number(name.slice(1)))
        : ({ lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' } as Record<string, string>)[name] ?? name,
  );

const xmlEscape = (text: string): string =>
  text.replace(/[<>&'"]/gu, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);

/**
 * Header pairs from `raw` (as in `rawHeaders`) without hop-by-hop headers and those the
 * Connection header names, in their original case, repeated names as arrays.
 */
function endToEnd(raw: readonly string[], drop: ReadonlySet<string> = new Set()): Array<[string, string]> {
  const named = new Set(HOP_BY_HOP);
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === 'connection') {
      for (const token of (raw[i + 1] ?? '').split(',')) named.add(token.trim().toLowerCase());
    }
  }
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (!named.has(lower) && !drop.has(lower)) pairs.push([name, raw[i + 1] ?? '']);
  }
  return pairs;
}

function asHeaderObject(pairs: ReadonlyArray<[string, string]>): OutgoingHttpHeaders {
  const byLower = new Map<string, { name: string; values: string[] }>();
  for (const [name, value] of pairs) {
    const slot = byLower.get(name.toLowerCase());
    if (slot) slot.values.push(value);
    else byLower.set(name.toLowerCase(), { name, values: [value] });
  }
  const headers: OutgoingHttpHeaders = {};
  for (const { name, values } of byLower.values()) headers[name] = values.length === 1 ? values[0] : values;
  return headers;
}

function resetSocket(socket: Socket | null | undefined): void {
  if (!socket || socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

const RETRYABLE_UPSTREAM = new Set(['ECONNRESET', 'EPIPE']);
const CLIENT_GONE = 'client went away';

/** One request in flight through the proxy: its sockets, timers, and how to tear it all down. */
class Exchange {
  upstreamReq: ClientRequest | undefined;
  upstreamRes: IncomingMessage | undefined;
  bodyBytes = 0;
  /** The proxy ended the exchange on purpose (a fault); no `error` is logged for it. */
  ended = false;
  /** The client went away (or the proxy closed) before the response was complete. */
  gone = false;
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly entry: ProxyLogEntry,
  ) {}

  /** Run `fn` once at least `ms` have passed by `performance.now()` (timers may fire a hair early). */
  after(ms: number, fn: () => void): void {
    const due = performance.now() + ms;
    const arm = (delay: number): void => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (this.gone) return;
        const left = due - performance.now();
        if (left > 0) arm(Math.ceil(left));
        else fn();
      }, delay);
      this.#timers.add(timer);
    };
    arm(ms);
  }

  /** Tear everything down: timers, the upstream request and response. */
  abort(reason?: string): void {
    if (this.gone) return;
    this.gone = true;
    if (reason !== undefined && !this.ended && !this.res.writableFinished && this.entry.error === undefined) this.entry.error = reason;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.upstreamRes?.destroy();
    this.upstreamReq?.destroy();
    if (!this.res.writableFinished) this.res.destroy();
  }

  /** End the exchange on purpose by resetting the client's connection. */
  resetClient(): void {
    this.ended = true;
    resetSocket(this.req.socket);
    this.abort();
  }
}

interface LiveRule {
  rule: FaultRule;
  matched: number;
  fired: number;
  removed: boolean;
}

function validateRule(rule: FaultRule): void {
  const times = rule.times ?? 1;
  const after = rule.after ?? 0;
  if (!(times >= 1 && (Number.isInteger(times) || times === Infinity))) throw new RangeError(`FaultRule.times must be a whole number ≥ 1 or Infinity, got ${times}`);
  if (!(Number.isInteger(after) && after >= 0)) throw new RangeError(`FaultRule.after must be a whole number ≥ 0, got ${after}`);
  const fault = rule.fault;
  if (fault.kind === 'reset-after' && !(Number.isInteger(fault.bytes) && fault.bytes >= 0)) throw new RangeError(`reset-after needs bytes ≥ 0, got ${fault.bytes}`);
  if ((fault.kind === 'stall' || fault.kind === 'stall-response') && !(Number.isFinite(fault.ms) && fault.ms >= 0)) throw new RangeError(`${fault.kind} needs ms ≥ 0, got ${fault.ms}`);
  if (fault.kind === 'status' && !(Number.isInteger(fault.status) && fault.status >= 200 && fault.status <= 599)) throw new RangeError(`status needs an HTTP status 200–599, got ${fault.status}`);
}

function parseUpstream(upstream: string): { host: string; port: number } {
  const url = new URL(upstream);
  if (url.protocol !== 'http:') throw new Error(`FaultProxy: upstream must be plain http, got ${upstream}`);
  const hostname = url.hostname.replace(/^\[(.*)\]$/u, '$1');
  const host = hostname === 'localhost' ? '127.0.0.1' : hostname;
  if (host !== '127.0.0.1' && host !== '::1') throw new Error(`FaultProxy: upstream must be on 127.0.0.1 or ::1, got ${upstream}`);
  if (url.pathname !== '/' || url.search !== '' || url.username !== '') {
    throw new Error(`FaultProxy: upstream must be a bare origin (paths are forwarded unchanged), got ${upstream}`);
  }
  return { host, port: url.port === '' ? 80 : Number(url.port) };
}

/**
 * The proxy. Start one per test file (or test) with {@link FaultProxy.start}, point the client at
 * {@link FaultProxy.endpoint}, {@link FaultProxy.inject} faults, read {@link FaultProxy.log}, and
 * {@link FaultProxy.close} it afterwards.
 */
export class FaultProxy {
  /** Base URL to point the S3 client at: `http://127.0.0.1:<port>`, stable across outages. */
  readonly endpoint: string;
  /** Every request received, in order of arrival, with what became of it. */
  readonly log: ProxyLogEntry[] = [];

  readonly #server: Server;
  readonly #agent: Agent;
  readonly #upstream: { host: string; port: number };
  readonly #port: number;
  readonly #rules: LiveRule[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #exchanges = new Set<Exchange>();
  #down = false;
  #closed = false;
  /** Resolves once the server has stopped after an outage began. */
  #stopped: Promise<void> = Promise.resolve();
  #outage: { timer: NodeJS.Timeout | undefined; resolve: () => void } | undefined;

  private constructor(server: Server, agent: Agent, upstream: { host: string; port: number }, port: number) {
    this.#server = server;
    this.#agent = agent;
    this.#upstream = upstream;
    this.#port = port;
    this.endpoint = `http://127.0.0.1:${port}`;
  }

  /**
   * Start a proxy on 127.0.0.1 (ephemeral port) in front of `upstream`, e.g. `http://127.0.0.1:7480`,
   * which must be a bare http origin on 127.0.0.1, ::1 or localhost.
   */
  static async start(upstream: string): Promise<FaultProxy> {
    const target = parseUpstream(upstream);
    // No request timeout (stalls may be long); idle client connections live long, so a client
    // rarely reuses one just as the proxy closes it.
    const server = createServer({ requestTimeout: 0, keepAliveTimeout: 60_000 });
    // Idle upstream connections are dropped well before a server's own idle timeout (RGW, Swift: 60 s+).
    const agent = new Agent({ keepAlive: true, timeout: 10_000, noDelay: true });
    await listen(server, 0);
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('FaultProxy: no TCP address');
    const proxy = new FaultProxy(server, agent, target, address.port);
    server.on('connection', (socket: Socket) => {
      proxy.#sockets.add(socket);
      socket.on('close', () => proxy.#sockets.delete(socket));
      if (proxy.#down || proxy.#closed) socket.destroy();
    });
    const handle = (req: IncomingMessage, res: ServerResponse): void => proxy.#handle(req, res);
    server.on('request', handle);
    // With a listener, Node leaves `Expect: 100-continue` to us: we relay the upstream's 100.
    server.on('checkContinue', handle);
    return proxy;
  }

  /** Add a rule after the existing ones (see {@link FaultRule} for how rules are matched). */
  inject(rule: FaultRule): InjectedRule {
    validateRule(rule);
    const live: LiveRule = { rule: { ...rule, fault: { ...rule.fault } }, matched: 0, fired: 0, removed: false };
    this.#rules.push(live);
    const times = rule.times ?? 1;
    return {
      get fired() {
        return live.fired;
      },
      get spent() {
        return live.removed || live.fired >= times;
      },
      remove: () => {
        live.removed = true;
      },
    };
  }

  /** Drop all rules. */
  clear(): void {
    for (const live of this.#rules) live.removed = true;
    this.#rules.length = 0;
  }

  /** How many requests of operation `op` the proxy has received (faulted ones included). */
  count(op: S3Operation): number {
    return this.log.filter((entry) => entry.op === op).length;
  }

  /**
   * Refuse connections: stop listening (new connections get ECONNREFUSED) and destroy every open
   * connection, with whatever is in flight on it. With `ms`, listen again on the same port after
   * `ms` and resolve once listening; without, resolve once down and leave it to {@link resume}.
   */
  outage(ms?: number): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('FaultProxy is closed'));
    if (this.#down) return Promise.reject(new Error('FaultProxy: an outage is already under way'));
    this.#down = true;
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#stopped = stopped;
    this.#dropConnections('connection dropped by an outage');
    if (ms === undefined) return stopped;
    return new Promise<void>((resolve, reject) => {
      const outage = {
        timer: undefined as NodeJS.Timeout | undefined,
        resolve,
      };
      this.#outage = outage;
      const due = performance.now() + ms;
      const wait = (delay: number): void => {
        outage.timer = setTimeout(() => {
          const left = due - performance.now();
          if (left > 0) {
            wait(Math.ceil(left));
            return;
          }
          outage.timer = undefined;
          this.resume().then(resolve, reject);
        }, delay);
      };
      wait(ms);
    });
  }

  /** End an outage: listen again on the same port. Resolves once listening. */
  async resume(): Promise<void> {
    if (this.#closed || !this.#down) return;
    if (this.#outage?.timer !== undefined) clearTimeout(this.#outage.timer);
    const outage = this.#outage;
    this.#outage = undefined;
    await this.#stopped;
    // The port is ours unless something grabbed it meanwhile; retry briefly on EADDRINUSE.
    for (let attempt = 0; !this.#closed; attempt += 1) {
      try {
        await listen(this.#server, this.#port);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    if (this.#closed) {
      // close() ran while we were re-listening.
      if (this.#server.listening) await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    } else {
      this.#down = false;
    }
    outage?.resolve();
  }

  /** Stop: drop every rule, destroy every connection both ways, stop listening. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.clear();
    if (this.#outage) {
      if (this.#outage.timer !== undefined) clearTimeout(this.#outage.timer);
      this.#outage.resolve();
      this.#outage = undefined;
    }
    this.#dropConnections('proxy closed');
    const stopped = this.#server.listening ? new Promise<void>((resolve) => this.#server.close(() => resolve())) : Promise.resolve();
    this.#server.closeAllConnections();
    this.#agent.destroy();
    await stopped;
  }

  #dropConnections(reason: string): void {
    for (const exchange of this.#exchanges) exchange.abort(reason);
    for (const socket of this.#sockets) socket.destroy();
  }

  #match(info: RequestInfo): Fault | undefined {
    for (const live of this.#rules) {
      const { rule } = live;
      if (live.removed || live.fired >= (rule.times ?? 1)) continue;
      if (typeof rule.op === 'function' ? !rule.op(info) : rule.op !== info.op) continue;
      live.matched += 1;
      if (live.matched <= (rule.after ?? 0)) continue;
      live.fired += 1;
      return rule.fault;
    }
    return undefined;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const info: RequestInfo = {
      op: s3Operation({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers }),
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
    };
    const entry: ProxyLogEntry = { ...info };
    this.log.push(entry);
    const exchange = new Exchange(req, res, entry);
    if (this.#closed || this.#down) {
      exchange.resetClient();
      return;
    }
    this.#exchanges.add(exchange);
    req.on('error', () => exchange.abort(CLIENT_GONE));
    res.on('error', () => exchange.abort(CLIENT_GONE));
    res.on('close', () => {
      this.#exchanges.delete(exchange);
      if (!res.writableFinished) exchange.abort(CLIENT_GONE);
    });
    res.sendDate = false;

    let fault: Fault | undefined;
    try {
      fault = this.#match(info);
    } catch (error) {
      entry.error = `rule predicate threw: ${String(error)}`;
      this.#answerError(exchange, 500, 'InternalError', entry.error);
      return;
    }
    if (fault) entry.fault = fault.kind;
    switch (fault?.kind) {
      case undefined:
        this.#forward(exchange, (upRes) => this.#relay(exchange, upRes));
        return;
      case 'reset':
        exchange.resetClient();
        return;
      case 'status':
        this.#answerError(exchange, fault.status, fault.code, fault.message ?? DEFAULT_MESSAGES[fault.code] ?? fault.code);
        return;
      case 'stall':
        exchange.after(fault.ms, () => this.#forward(exchange, (upRes) => this.#relay(exchange, upRes)));
        return;
      case 'stall-response': {
        const { ms } = fault;
        this.#forward(exchange, (upRes) => exchange.after(ms, () => this.#relay(exchange, upRes)));
        return;
      }
      case 'lose-response':
        this.#forward(exchange, (upRes) => {
          entry.status = upRes.statusCode ?? 0;
          upRes.on('end', () => exchange.resetClient());
          upRes.on('close', () => exchange.resetClient());
          upRes.resume();
        });
        return;
      case 'reset-after':
        this.#forward(exchange, (upRes) => this.#relay(exchange, upRes), fault.bytes);
        return;
      case 'delete-errors':
        this.#deleteErrors(exchange, fault);
        return;
    }
  }

  /** The `delete-errors` fault: see {@link Fault}. */
  #deleteErrors(exchange: Exchange, fault: DeleteErrorsFault): void {
    const { req, res, entry } = exchange;
    if (entry.op !== 'DeleteObjects') {
      this.#forward(exchange, (upRes) => this.#relay(exchange, upRes));
      return;
    }
    // Node leaves `Expect: 100-continue` to us: ask for the body, which we need whole.
    if (header(req.headers, 'expect')?.toLowerCase() === '100-continue') res.writeContinue();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (exchange.gone) return;
      const original = Buffer.concat(chunks);
      const failing = new Map(fault.errors.map((error) => [error.key, error]));
      const taken: InjectedDeleteError[] = [];
      let left = 0;
      const xml = original.toString('utf8').replace(/<Object>([\s\S]*?)<\/Object>/gu, (block: string, inner: string) => {
        const key = xmlUnescape(/<Key>([\s\S]*?)<\/Key>/u.exec(inner)?.[1] ?? '');
        const error = failing.get(key);
        if (error === undefined) {
          left += 1;
          return block;
        }
        taken.push(error);
        return '';
      });
      const errorsXml = taken
        .map(
          (error) =>
            `<Error><Key>${xmlEscape(error.key)}</Key><Code>${xmlEscape(error.code)}</Code>` +
            `<Message>${xmlEscape(error.message ?? DEFAULT_MESSAGES[error.code] ?? error.code)}</Message></Error>`,
        )
        .join('');
      if (left === 0) {
        this.#answer(exchange, 200, [['Content-Type', 'application/xml']], Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${errorsXml}</DeleteResult>`));
        return;
      }
      const body = taken.length === 0 ? original : Buffer.from(xml);
      const headers: Record<string, string> = {};
      for (const [name, value] of endToEnd(req.rawHeaders, new Set(['expect', 'trailer']))) headers[name.toLowerCase()] = value;
      const forward = (sent: Record<string, string>): void =>
        this.#forwardBuffered(exchange, sent, body, (upRes, answer) => {
          let out = answer;
          if (taken.length > 0 && upRes.statusCode === 200) {
            const text = answer.toString('utf8');
            out = Buffer.from(
              /<DeleteResult[^>]*\/>/u.test(text)
                ? text.replace(/<DeleteResult([^>]*?)\s*\/>/u, `<DeleteResult$1>${errorsXml}</DeleteResult>`)
                : text.replace('</DeleteResult>', `${errorsXml}</DeleteResult>`),
            );
          }
          this.#answer(exchange, upRes.statusCode ?? 502, endToEnd(upRes.rawHeaders, new Set(['content-length', 'trailer'])), out);
        });
      if (taken.length === 0) {
        forward(headers);
        return;
      }
      const hadMd5 = headers['content-md5'] !== undefined;
      for (const name of Object.keys(headers)) {
        if (/^(authorization|x-amz-date|content-length|content-md5|x-amz-content-sha256|x-amz-checksum-.*|x-amz-sdk-checksum-algorithm)$/u.test(name)) delete headers[name];
      }
      headers['content-length'] = String(body.length);
      headers['x-amz-content-sha256'] = createHash('sha256').update(body).digest('hex');
      if (hadMd5) headers['content-md5'] = createHash('md5').update(body).digest('base64');
      fault.sign({ method: req.method ?? 'POST', url: req.url ?? '/', headers, body }).then(forward, (error: unknown) => {
        entry.error = `could not re-sign: ${String(error)}`;
        this.#answerError(exchange, 500, 'InternalError', entry.error);
      });
    });
  }

  /** Send a buffered request upstream; hand over the upstream's status, headers and whole body. */
  #forwardBuffered(exchange: Exchange, headers: Record<string, string>, body: Buffer, onResponse: (upRes: IncomingMessage, body: Buffer) => void): void {
    const { req, res, entry } = exchange;
    if (exchange.gone) return;
    const up = httpRequest({
      host: this.#upstream.host,
      port: this.#upstream.port,
      method: req.method ?? 'POST',
      path: req.url ?? '/',
      headers,
      setHost: false,
      agent: this.#agent,
    });
    exchange.upstreamReq = up;
    up.on('response', (upRes) => {
      exchange.upstreamRes = upRes;
      upRes.on('error', () => undefined);
      const parts: Buffer[] = [];
      upRes.on('data', (chunk: Buffer) => parts.push(chunk));
      upRes.on('end', () => {
        if (!exchange.gone) onResponse(upRes, Buffer.concat(parts));
      });
    });
    up.on('error', (error: NodeJS.ErrnoException) => {
      if (exchange.gone || exchange.ended) return;
      entry.error = `upstream: ${error.message}`;
      if (!res.headersSent) this.#answerError(exchange, 502, 'BadGateway', entry.error);
      else exchange.abort();
    });
    up.end(body);
  }

  /** Answer with `status`, the given headers and `body` (its length set here). */
  #answer(exchange: Exchange, status: number, headers: Array<[string, string]>, body: Buffer): void {
    const { res, entry } = exchange;
    entry.status = status;
    res.writeHead(status, [...headers, ['Content-Length', String(body.length)]].flat());
    res.end(body);
  }

  /** Answer with an S3 XML error, forwarding nothing. */
  #answerError(exchange: Exchange, status: number, code: string, message: string): void {
    const { res, entry } = exchange;
    const requestId = `faultproxy-${this.log.length}`;
    const body = Buffer.from(
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
        `<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message>` +
        `<Resource>${xmlEscape(entry.url.split('?')[0] ?? '')}</Resource><RequestId>${requestId}</RequestId></Error>`,
    );
    entry.status = status;
    res.writeHead(status, {
      'Content-Type': 'application/xml',
      'Content-Length': String(body.length),
      'x-amz-request-id': requestId,
      Date: new Date().toUTCString(),
    });
    res.end(body);
  }

  /**
   * Send the request upstream and stream its body there; hand the upstream's response to
   * `onResponse`. With `cutAfter`, stop after that many body bytes and reset both sides.
   */
  #forward(exchange: Exchange, onResponse: (upRes: IncomingMessage) => void, cutAfter?: number, attempt = 0): void {
    const { req, res, entry } = exchange;
    if (exchange.gone) return;
    const te = req.headers['transfer-encoding'];
    const length = req.headers['content-length'];
    const hasBody = te !== undefined || (length !== undefined && length !== '0');
    let up: ClientRequest;
    try {
      up = httpRequest({
        host: this.#upstream.host,
        port: this.#upstream.port,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: asHeaderObject(endToEnd(req.rawHeaders, length === undefined ? new Set() : new Set(['trailer']))),
        setHost: false,
        agent: this.#agent,
      });
    } catch (error) {
      entry.error = `could not forward: ${String(error)}`;
      this.#answerError(exchange, 502, 'BadGateway', entry.error);
      return;
    }
    exchange.upstreamReq = up;
    let responded = false;
    up.on('continue', () => {
      if (!exchange.gone && !res.headersSent) res.writeContinue();
    });
    up.on('response', (upRes) => {
      responded = true;
      exchange.upstreamRes = upRes;
      upRes.on('error', () => undefined);
      if (exchange.gone) {
        upRes.destroy();
        return;
      }
      onResponse(upRes);
    });
    up.on('error', (error: NodeJS.ErrnoException) => {
      if (exchange.gone || exchange.ended) return;
      // A keep-alive connection the upstream closed just as we reused it: safe to retry a bodyless request once.
      if (!responded && !hasBody && attempt === 0 && up.reusedSocket && RETRYABLE_UPSTREAM.has(error.code ?? '')) {
        this.#forward(exchange, onResponse, cutAfter, attempt + 1);
        return;
      }
      entry.error = `upstream: ${error.message}`;
      if (!res.headersSent) this.#answerError(exchange, 502, 'BadGateway', entry.error);
      else exchange.abort();
    });

    if (cutAfter === 0) {
      up.flushHeaders();
      this.#afterFlush(up, () => this.#cut(exchange));
      return;
    }
    if (!hasBody) {
      up.end();
      return;
    }
    // The head goes out now: with `Expect: 100-continue` the upstream answers 100 to the head alone.
    up.flushHeaders();
    req.on('data', (chunk: Buffer) => {
      if (exchange.gone || exchange.ended || up.destroyed) return;
      if (cutAfter !== undefined && exchange.bodyBytes + chunk.length >= cutAfter) {
        const piece = chunk.subarray(0, cutAfter - exchange.bodyBytes);
        exchange.bodyBytes += piece.length;
        exchange.ended = true;
        req.pause();
        up.write(piece, () => this.#cut(exchange));
        return;
      }
      exchange.bodyBytes += chunk.length;
      if (!up.write(chunk)) {
        req.pause();
        up.once('drain', () => req.resume());
      }
    });
    req.on('end', () => {
      if (exchange.gone || exchange.ended) return;
      if (Object.keys(req.trailers).length > 0) up.addTrailers(asHeaderObject(endToEnd(req.rawTrailers)));
      up.end();
    });
  }

  /** Call `fn` once the request head is written to the upstream socket. */
  #afterFlush(up: ClientRequest, fn: () => void): void {
    const socket = up.socket;
    if (!socket) {
      up.once('socket', () => setImmediate(() => this.#afterFlush(up, fn)));
      return;
    }
    if (socket.connecting) {
      socket.once('connect', () => setImmediate(() => this.#afterFlush(up, fn)));
      return;
    }
    socket.write(Buffer.alloc(0), () => fn());
  }

  /** The `reset-after` cut: abort upstream, reset the client. */
  #cut(exchange: Exchange): void {
    exchange.ended = true;
    exchange.upstreamReq?.destroy();
    exchange.resetClient();
  }

  /** Send the upstream's response on to the client: status, headers, body, trailers. */
  #relay(exchange: Exchange, upRes: IncomingMessage): void {
    const { res, entry } = exchange;
    if (exchange.gone) {
      upRes.destroy();
      return;
    }
    const hasLength = upRes.headers['content-length'] !== undefined;
    // A Trailer header is only valid with a chunked body (Node refuses it otherwise).
    const pairs = endToEnd(upRes.rawHeaders, hasLength ? new Set(['trailer']) : new Set());
    const status = upRes.statusCode ?? 502;
    entry.status = status;
    res.writeHead(status, upRes.statusMessage, pairs.flat());
    upRes.pipe(res, { end: false });
    upRes.on('end', () => {
      if (!upRes.complete) {
        exchange.abort('upstream response was cut short');
        return;
      }
      if (Object.keys(upRes.trailers).length > 0) res.addTrailers(asHeaderObject(endToEnd(upRes.rawTrailers)));
      res.end();
    });
    upRes.on('close', () => {
      if (!upRes.complete) exchange.abort('upstream response was cut short');
    });
  }
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host: '127.0.0.1', exclusive: true });
  });
}
