/**
 * The fault proxy (test/helpers/fault-proxy.ts) against a small local node:http upstream that
 * records what it received (head, body bytes and hash, trailers, timestamps) and answers with a
 * fixed body: that it forwards faithfully, classifies S3 requests, and that each fault does
 * exactly what it says, seen from both the client's and the upstream's side.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, OutgoingHttpHeaders, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FaultProxy, s3Operation, type S3Operation } from '../helpers/fault-proxy.js';

const MiB = 1024 * 1024;
const BIG = randomBytes(6 * MiB);
const FIXED = Buffer.from('fixed upstream body\n');
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------------------------------------
// The upstream: records every request, answers once the request body has ended.

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  trailers: NodeJS.Dict<string>;
  bytes: number;
  sha256: string;
  /** performance.now() when the request head arrived. */
  arrivedAt: number;
  /** The whole body arrived. */
  complete: boolean;
  /** The request broke off before its body ended. */
  aborted: boolean;
  /** performance.now() when the upstream's response was fully written. */
  answeredAt: number | undefined;
  /** The response's connection went away before the response was complete. */
  responseCutShort: boolean;
}

interface Upstream {
  url: string;
  seen: Seen[];
  /** TCP connections accepted so far. */
  connections: number;
  /** Called as each request head arrives. */
  onArrival: ((seen: Seen) => void) | undefined;
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const upstream: Upstream = {
    url: '',
    seen: [],
    connections: 0,
    onArrival: undefined,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req, res) => {
    const hash = createHash('sha256');
    const seen: Seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      trailers: {},
      bytes: 0,
      sha256: '',
      arrivedAt: performance.now(),
      complete: false,
      aborted: false,
      answeredAt: undefined,
      responseCutShort: false,
    };
    upstream.seen.push(seen);
    upstream.onArrival?.(seen);
    res.on('finish', () => (seen.answeredAt = performance.now()));
    res.on('close', () => (seen.responseCutShort = !res.writableFinished));
    req.on('data', (chunk: Buffer) => {
      seen.bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('error', () => undefined);
    req.on('close', () => (seen.aborted = !req.complete));
    req.on('end', () => {
      seen.complete = true;
      seen.sha256 = hash.digest('hex');
      seen.trailers = { ...req.trailers };
      const path = (req.url ?? '').split('?')[0] ?? '';
      const status = Number(req.headers['x-test-status'] ?? 200);
      if (req.method === 'HEAD') {
        res.writeHead(status, { 'Content-Length': '12345', ETag: '"head"', 'Last-Modified': 'Wed, 01 Jan 2025 00:00:00 GMT' }).end();
      } else if (path.endsWith('/big')) {
        res.writeHead(200, { 'Content-Length': String(BIG.length), 'Content-Type': 'application/octet-stream' }).end(BIG);
      } else if (path.endsWith('/endless')) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 7);
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      } else if (path.endsWith('/trailers')) {
        res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'x-checksum' });
        res.write('part one, ');
        res.write('part two');
        res.addTrailers({ 'x-checksum': 'abc123' });
        res.end();
      } else {
        res.writeHead(status, status === 201 ? 'Made It' : undefined, [
          'Content-Type', 'text/plain',
          'Content-Length', String(status === 204 ? 0 : FIXED.length),
          'x-amz-request-id', `upstream-${upstream.seen.length}`,
          'X-Mixed-Case', 'Value With Spaces',
          'Set-Cookie', 'a=1',
          'Set-Cookie', 'b=2',
          'x-received-bytes', String(seen.bytes),
        ]);
        res.end(status === 204 ? undefined : FIXED);
      }
    });
  });
  server.on('connection', (socket: Socket) => {
    upstream.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

// ---------------------------------------------------------------------------------------------
// The client: one http.request, its whole answer.

interface Answer {
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  trailers: NodeJS.Dict<string>;
  body: Buffer;
  /** performance.now() when the response head arrived. */
  respondedAt: number;
  /** Whether the request got a `100 Continue`. */
  continued: boolean;
  reusedSocket: boolean;
}

interface SendOptions {
  method?: string;
  path?: string;
  headers?: OutgoingHttpHeaders;
  /** Sent with a Content-Length. */
  body?: Buffer;
  /** Sent chunked, without a Content-Length. */
  chunks?: Buffer[];
  trailers?: Record<string, string>;
  /** Wait for `100 Continue` before sending `body`. */
  expectContinue?: boolean;
  /** @default false: a connection of its own */
  agent?: Agent | false;
  /** Called with the request as soon as it is made (e.g. to destroy it later). */
  onRequest?: (req: ClientRequest) => void;
}

function send(base: string, options: SendOptions = {}): Promise<Answer> {
  const url = new URL(options.path ?? '/bucket/key', base);
  return new Promise<Answer>((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { ...options.headers };
    if (options.body !== undefined) headers['Content-Length'] = String(options.body.length);
    if (options.expectContinue) headers.Expect = '100-continue';
    if (options.trailers) headers.Trailer = Object.keys(options.trailers).join(', ');
    let continued = false;
    const req = request(
      { host: url.hostname, port: url.port, method: options.method ?? 'GET', path: `${url.pathname}${url.search}`, headers, agent: options.agent ?? false },
      (res) => {
        const respondedAt = performance.now();
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            statusMessage: res.statusMessage ?? '',
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            trailers: { ...res.trailers },
            body: Buffer.concat(chunks),
            respondedAt,
            continued,
            reusedSocket: req.reusedSocket,
          }),
        );
      },
    );
    req.on('error', reject);
    options.onRequest?.(req);
    if (options.expectContinue) {
      req.on('continue', () => {
        continued = true;
        req.end(options.body);
      });
      req.flushHeaders();
      return;
    }
    for (const chunk of options.chunks ?? []) req.write(chunk);
    if (options.trailers) req.addTrailers(options.trailers);
    req.end(options.body);
  });
}

/** The socket-level error a request failed with (it must fail). */
async function failure(pending: Promise<unknown>): Promise<string> {
  try {
    await pending;
  } catch (error) {
    return String((error as NodeJS.ErrnoException).code);
  }
  return expect.fail('expected the request to fail');
}

const RESET = ['ECONNRESET', 'EPIPE'];
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const activeTimeouts = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

// ---------------------------------------------------------------------------------------------

describe('s3Operation', () => {
  const claim = { 'content-length': '0', 'x-amz-meta-doorito-claim': '1' };
  it.each<[S3Operation, string, string, IncomingHttpHeaders]>([
    ['PutObject', 'PUT', '/bucket/key?x-id=PutObject', { 'content-length': '11' }],
    ['PutObject', 'PUT', '/bucket/dir/key.txt', { 'content-length': '0' }],
    ['PutObject', 'PUT', '/bucket/key', { 'content-length': '5', 'x-amz-meta-doorito-claim': '1' }],
    ['Claim', 'PUT', '/bucket/dir/key.txt?x-id=PutObject', claim],
    ['Claim', 'PUT', '/bucket/key', { 'content-length': '86', 'x-amz-decoded-content-length': '0', 'x-amz-meta-doorito-claim': '1' }],
    ['CopyObject', 'PUT', '/bucket/to?x-id=CopyObject', { 'x-amz-copy-source': '/bucket/from', 'content-length': '0' }],
    ['CreateMultipartUpload', 'POST', '/bucket/key?uploads&x-id=CreateMultipartUpload', {}],
    ['CreateMultipartUpload', 'POST', '/bucket/key?uploads=', { 'content-length': '0' }], // what SDK 3.x sends today
    ['UploadPart', 'PUT', '/bucket/key?partNumber=1&uploadId=X&x-id=UploadPart', { 'content-length': String(5 * MiB) }],
    ['CompleteMultipartUpload', 'POST', '/bucket/key?uploadId=X&x-id=CompleteMultipartUpload', { 'content-length': '200' }],
    ['CompleteMultipartUpload', 'POST', '/bucket/key?uploadId=X', { 'content-length': '200' }],
    ['AbortMultipartUpload', 'DELETE', '/bucket/key?uploadId=X&x-id=AbortMultipartUpload', {}],
    ['ListParts', 'GET', '/bucket/key?uploadId=X&x-id=ListParts', {}],
    ['HeadObject', 'HEAD', '/bucket/key', {}],
    ['HeadObject', 'HEAD', '/bucket/key?partNumber=1', {}],
    ['GetObject', 'GET', '/bucket/key?x-id=GetObject', {}],
    ['GetObject', 'GET', '/bucket/a%2Fb/%E6%8A%A5%E5%91%8A.pdf?response-content-disposition=attachment&X-Amz-Signature=abc', {}],
    ['DeleteObject', 'DELETE', '/bucket/key?x-id=DeleteObject', {}],
    ['DeleteObjects', 'POST', '/bucket?delete', { 'content-length': '120' }],
    ['DeleteObjects', 'POST', '/bucket/?delete=', { 'content-length': '132' }],
    ['ListObjectsV2', 'GET', '/bucket?list-type=2&prefix=p', {}],
    ['ListObjectsV2', 'GET', '/bucket/?list-type=2&prefix=p&continuation-token=t', {}],
    ['ListMultipartUploads', 'GET', '/bucket?uploads', {}],
    ['ListMultipartUploads', 'GET', '/bucket/?uploads=&prefix=p', {}],
    ['Other', 'GET', '/', {}], // ListBuckets
    ['Other', 'PUT', '/bucket', {}], // CreateBucket
    ['Other', 'HEAD', '/bucket', {}], // HeadBucket
    ['Other', 'GET', '/bucket?prefix=p', {}], // ListObjects v1
    ['Other', 'GET', '/bucket?versions', {}], // ListObjectVersions
    ['Other', 'GET', '/bucket/key?acl', {}],
    ['Other', 'PUT', '/bucket/key?tagging', { 'content-length': '100' }],
  ])('%s ← %s %s', (op, method, url, headers) => {
    expect(s3Operation({ method, url, headers })).toBe(op);
  });
});

describe('FaultProxy', () => {
  let upstream: Upstream;
  let proxy: FaultProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await upstream.close();
  });
  beforeEach(async () => {
    upstream.seen.length = 0;
    upstream.onArrival = undefined;
    proxy = await FaultProxy.start(upstream.url);
  });
  afterEach(async () => {
    await proxy.close();
  });

  describe('forwarding', () => {
    it('forwards method, path and query, headers (Host unchanged) and status byte for byte', async () => {
      const path = '/bucket/some%20dir/k%C3%A9y+1?partNumber=1&uploadId=a%2Fb%2Bc%3D&x-id=UploadPart';
      const headers = {
        Authorization: 'AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab',
        'X-Amz-Date': '20250101T000000Z',
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        'X-Amz-Meta-Mixed': 'Keep  Case',
        'x-test-status': '201',
      };
      const answer = await send(proxy.endpoint, { method: 'PUT', path, headers, body: Buffer.from('hello world') });

      expect(upstream.seen).toHaveLength(1);
      const seen = upstream.seen[0]!;
      expect(seen.method).toBe('PUT');
      expect(seen.url).toBe(path);
      const pairs = (raw: string[]): string[] => raw.flatMap((v, i) => (i % 2 === 0 ? [`${v}: ${raw[i + 1]}`] : []));
      const port = new URL(proxy.endpoint).port;
      expect(pairs(seen.rawHeaders)).toEqual(
        expect.arrayContaining([...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), 'Content-Length: 11', `Host: 127.0.0.1:${port}`]),
      );
      expect(seen.bytes).toBe(11);

      expect(answer.status).toBe(201);
      expect(answer.statusMessage).toBe('Made It');
      expect(answer.body.equals(FIXED)).toBe(true);
      expect(answer.headers['content-length']).toBe(String(FIXED.length));
      expect(answer.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(pairs(answer.rawHeaders)).toEqual(expect.arrayContaining(['X-Mixed-Case: Value With Spaces', 'x-amz-request-id: upstream-1', 'x-received-bytes: 11']));

      // A Host the client chose (virtual-host style, another port) is not rewritten either.
      await send(proxy.endpoint, { path: '/key', headers: { Host: 'bucket.s3.example.com:9000' } });
      expect(upstream.seen[1]?.headers.host).toBe('bucket.s3.example.com:9000');
      expect(proxy.log.map((e) => [e.op, e.method, e.url, e.status])).toEqual([
        ['UploadPart', 'PUT', path, 201],
        ['Other', 'GET', '/key', 200],
      ]);
    });

    it('streams a 6 MiB request body and a 6 MiB response body byte-exact (fetch)', async () => {
      const put = await fetch(`${proxy.endpoint}/bucket/upload`, { method: 'PUT', body: BIG });
      expect(put.status).toBe(200);
      expect(Number(put.headers.get('x-received-bytes'))).toBe(BIG.length);
      await put.arrayBuffer();
      expect(upstream.seen[0]).toMatchObject({ bytes: BIG.length, sha256: sha256(BIG), complete: true });
      expect(upstream.seen[0]?.headers['content-length']).toBe(String(BIG.length));

      const get = await fetch(`${proxy.endpoint}/bucket/big`);
      expect(get.headers.get('content-length')).toBe(String(BIG.length));
      expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(sha256(BIG));
    });

    it('forwards a chunked request body with its trailers, and a chunked response with its trailers', async () => {
      const chunks = [BIG.subarray(0, 3 * MiB), BIG.subarray(3 * MiB, 5 * MiB), BIG.subarray(5 * MiB)];
      await send(proxy.endpoint, { method: 'PUT', path: '/bucket/chunked', chunks, trailers: { 'x-amz-checksum-crc32': 'AAAAAA==' } });
      const seen = upstream.seen[0]!;
      expect(seen.headers['transfer-encoding']).toBe('chunked');
      expect(seen.headers['content-length']).toBeUndefined();
      expect(seen).toMatchObject({ bytes: BIG.length, sha256: sha256(BIG) });
      expect(seen.trailers).toEqual({ 'x-amz-checksum-crc32': 'AAAAAA==' });

      const answer = await send(proxy.endpoint, { path: '/bucket/trailers' });
      expect(answer.body.toString()).toBe('part one, part two');
      expect(answer.headers['transfer-encoding']).toBe('chunked');
      expect(answer.trailers).toEqual({ 'x-checksum': 'abc123' });
    });

    it('answers HEAD with the upstream Content-Length and no body, 204 with no body', async () => {
      const head = await send(proxy.endpoint, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe('12345');
      expect(head.headers.etag).toBe('"head"');
      expect(head.body.length).toBe(0);
      const deleted = await send(proxy.endpoint, { method: 'DELETE', headers: { 'x-test-status': '204' } });
      expect(deleted.status).toBe(204);
      expect(deleted.body.length).toBe(0);
      expect(proxy.log.map((e) => [e.op, e.status])).toEqual([['HeadObject', 200], ['DeleteObject', 204]]);
    });

    it('relays the upstream\'s 100 Continue, so a client that waits for it sends its body', async () => {
      const body = BIG.subarray(0, MiB);
      const answer = await send(proxy.endpoint, { method: 'PUT', body, expectContinue: true });
      expect(answer.continued).toBe(true);
      expect(answer.status).toBe(200);
      expect(upstream.seen[0]?.headers.expect).toBe('100-continue');
      expect(upstream.seen[0]).toMatchObject({ bytes: body.length, sha256: sha256(body) });
    });

    it('keeps connections alive on both sides', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const answers = [];
        for (let i = 0; i < 3; i += 1) answers.push(await send(proxy.endpoint, { path: `/bucket/k${i}`, agent }));
        expect(answers.map((a) => a.reusedSocket)).toEqual([false, true, true]);
        expect(upstream.seen).toHaveLength(3);
        // The proxy's own agent reuses its upstream connection too (this upstream counts connections
        // across tests, so compare before and after).
        const before = upstream.connections;
        await send(proxy.endpoint, { path: '/bucket/k3', agent });
        await send(proxy.endpoint, { path: '/bucket/k4', agent });
        expect(upstream.connections).toBe(before);
      } finally {
        agent.destroy();
      }
    });

    it('answers 502 BadGateway in S3 XML when the upstream cannot be reached', async () => {
      const dead = await startUpstream();
      await dead.close();
      const lonely = await FaultProxy.start(dead.url);
      try {
        const answer = await send(lonely.endpoint, { method: 'PUT', body: Buffer.from('x') });
        expect(answer.status).toBe(502);
        expect(answer.body.toString()).toContain('<Code>BadGateway</Code>');
        expect(lonely.log[0]?.error).toMatch(/ECONNREFUSED/u);
      } finally {
        await lonely.close();
      }
    });

    it('refuses an upstream that is not plain http on loopback', async () => {
      await expect(FaultProxy.start('http://10.0.0.1:7480')).rejects.toThrow(/127\.0\.0\.1 or ::1/u);
      await expect(FaultProxy.start('http://s3.amazonaws.com')).rejects.toThrow(/127\.0\.0\.1 or ::1/u);
      await expect(FaultProxy.start('https://127.0.0.1:7480')).rejects.toThrow(/plain http/u);
      await expect(FaultProxy.start('http://127.0.0.1:7480/prefix')).rejects.toThrow(/bare origin/u);
      const v6 = await FaultProxy.start('http://[::1]:7480');
      await v6.close();
      expect(() => proxy.inject({ op: 'PutObject', fault: { kind: 'reset' }, times: 0 })).toThrow(RangeError);
    });
  });

  describe('faults', () => {
    it('reset-after: upstream gets exactly the first bytes and an aborted request; the client a reset', async () => {
      proxy.inject({ op: 'PutObject', fault: { kind: 'reset-after', bytes: MiB } });
      expect(RESET).toContain(await failure(send(proxy.endpoint, { method: 'PUT', body: BIG })));
      await vi.waitFor(() => expect(upstream.seen[0]?.aborted).toBe(true));
      expect(upstream.seen[0]).toMatchObject({ method: 'PUT', bytes: MiB, complete: false, answeredAt: undefined });
      expect(proxy.log[0]).toMatchObject({ op: 'PutObject', fault: 'reset-after' });
      expect(proxy.log[0]?.status).toBeUndefined();
      expect(proxy.log[0]?.error).toBeUndefined();

      // Spent: the next one goes through.
      expect((await send(proxy.endpoint, { method: 'PUT', body: BIG })).status).toBe(200);
      expect(upstream.seen[1]).toMatchObject({ bytes: BIG.length, complete: true });
    });

    it('reset-after 0 bytes: upstream gets the head only', async () => {
      proxy.inject({ op: 'UploadPart', fault: { kind: 'reset-after', bytes: 0 } });
      const path = '/bucket/key?partNumber=1&uploadId=X&x-id=UploadPart';
      expect(RESET).toContain(await failure(send(proxy.endpoint, { method: 'PUT', path, body: BIG })));
      await vi.waitFor(() => expect(upstream.seen[0]?.aborted).toBe(true));
      expect(upstream.seen[0]).toMatchObject({ url: path, bytes: 0, complete: false });
    });

    it('lose-response: upstream gets the whole request and answers; the client only a reset', async () => {
      proxy.inject({ op: 'PutObject', fault: { kind: 'lose-response' } });
      expect(RESET).toContain(await failure(send(proxy.endpoint, { method: 'PUT', body: BIG })));
      expect(upstream.seen[0]).toMatchObject({ bytes: BIG.length, sha256: sha256(BIG), complete: true, responseCutShort: false });
      expect(upstream.seen[0]?.answeredAt).toBeDefined();
      expect(proxy.log[0]).toMatchObject({ op: 'PutObject', fault: 'lose-response', status: 200 });
    });

    it('stall: the upstream gets the request only after the stall, while other connections flow', async () => {
      proxy.inject({ op: 'HeadObject', fault: { kind: 'stall', ms: 300 } });
      const sentAt = performance.now();
      const stalled = send(proxy.endpoint, { method: 'HEAD', path: '/bucket/stalled' });
      await vi.waitFor(() => expect(proxy.log).toHaveLength(1));
      const other = await send(proxy.endpoint, { path: '/bucket/other' });
      expect(other.status).toBe(200);
      expect((await stalled).status).toBe(200);

      const head = upstream.seen.find((s) => s.url === '/bucket/stalled')!;
      const get = upstream.seen.find((s) => s.url === '/bucket/other')!;
      expect(head.arrivedAt - sentAt).toBeGreaterThanOrEqual(300);
      expect(get.answeredAt).toBeLessThan(head.arrivedAt);
      expect(proxy.log.map((e) => [e.url, e.fault, e.status])).toEqual([
        ['/bucket/stalled', 'stall', 200],
        ['/bucket/other', undefined, 200],
      ]);
    });

    it('stall: reads no more of the body meanwhile, then forwards it whole', async () => {
      // 64 MiB: far more than the socket buffers between client and proxy hold, so a proxy
      // that kept reading during the stall would let the client flush it all before forwarding.
      const chunk = BIG.subarray(0, MiB);
      const count = 64;
      const expected = createHash('sha256');
      for (let i = 0; i < count; i += 1) expected.update(chunk);
      let flushed = 0;
      let flushedWhenForwarded = -1;
      upstream.onArrival = () => (flushedWhenForwarded = flushed);
      proxy.inject({ op: 'PutObject', fault: { kind: 'stall', ms: 300 } });
      const sentAt = performance.now();
      const answer = await new Promise<number>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: new URL(proxy.endpoint).port, method: 'PUT', path: '/bucket/k', headers: { 'Content-Length': String(count * MiB) } },
          (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)),
        );
        req.on('error', reject);
        for (let i = 0; i < count; i += 1) req.write(chunk, () => (flushed += chunk.length));
        req.end();
      });
      expect(answer).toBe(200);
      expect(upstream.seen[0]!.arrivedAt - sentAt).toBeGreaterThanOrEqual(300);
      expect(flushedWhenForwarded).toBeGreaterThanOrEqual(0);
      expect(flushedWhenForwarded).toBeLessThan(count * MiB / 2);
      expect(upstream.seen[0]).toMatchObject({ bytes: count * MiB, sha256: expected.digest('hex') });
    });

    it('stall: a client that gives up meanwhile is never forwarded, and leaves no timer behind', async () => {
      const timersBefore = activeTimeouts();
      proxy.inject({ op: 'GetObject', fault: { kind: 'stall', ms: 30_000 } });
      let req: ClientRequest | undefined;
      const pending = failure(send(proxy.endpoint, { onRequest: (r) => (req = r) }));
      await vi.waitFor(() => expect(proxy.log).toHaveLength(1));
      req?.destroy();
      expect(RESET).toContain(await pending);
      await vi.waitFor(() => expect(proxy.log[0]?.error).toBe('client went away'));
      expect(activeTimeouts()).toBeLessThanOrEqual(timersBefore);
      expect(upstream.seen).toHaveLength(0);

      // Same with a short stall: when it ends, nothing is sent upstream.
      proxy.inject({ op: 'GetObject', fault: { kind: 'stall', ms: 100 } });
      const short = failure(send(proxy.endpoint, { onRequest: (r) => (req = r) }));
      await vi.waitFor(() => expect(proxy.log).toHaveLength(2));
      req?.destroy();
      await short;
      await pause(250);
      expect(upstream.seen).toHaveLength(0);
    });

    it('stall-response: the upstream answers at once, the client hears only after the stall', async () => {
      proxy.inject({ op: 'GetObject', fault: { kind: 'stall-response', ms: 300 } });
      const answer = await send(proxy.endpoint);
      const seen = upstream.seen[0]!;
      expect(seen.answeredAt).toBeDefined();
      expect(answer.respondedAt - seen.answeredAt!).toBeGreaterThanOrEqual(300);
      expect(answer.body.equals(FIXED)).toBe(true);
      expect(proxy.log[0]).toMatchObject({ op: 'GetObject', fault: 'stall-response', status: 200 });

      // A body larger than the socket buffers waits too, and arrives whole.
      proxy.inject({ op: 'GetObject', fault: { kind: 'stall-response', ms: 200 } });
      const big = await send(proxy.endpoint, { path: '/bucket/big' });
      expect(big.respondedAt - upstream.seen[1]!.arrivedAt).toBeGreaterThanOrEqual(200);
      expect(sha256(big.body)).toBe(sha256(BIG));
    });

    it('status: answers an S3 XML error with a Content-Length, forwarding nothing', async () => {
      proxy.inject({ op: 'PutObject', fault: { kind: 'status', status: 503, code: 'SlowDown' } });
      const answer = await send(proxy.endpoint, { method: 'PUT', path: '/bucket/a/b.txt', body: BIG });
      expect(answer.status).toBe(503);
      expect(answer.headers['content-type']).toBe('application/xml');
      expect(answer.headers['content-length']).toBe(String(answer.body.length));
      const xml = answer.body.toString();
      expect(xml).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<Error><Code>SlowDown<\/Code><Message>Please reduce your request rate\.<\/Message>/u);
      expect(xml).toContain('<Resource>/bucket/a/b.txt</Resource>');

      proxy.inject({ op: 'GetObject', fault: { kind: 'status', status: 500, code: 'InternalError', message: 'a <b> & c' } });
      const custom = await send(proxy.endpoint);
      expect(custom.body.toString()).toContain('<Code>InternalError</Code><Message>a &lt;b&gt; &amp; c</Message>');

      proxy.inject({ op: 'HeadObject', fault: { kind: 'status', status: 404, code: 'NoSuchKey' } });
      const head = await send(proxy.endpoint, { method: 'HEAD' });
      expect(head.status).toBe(404);
      expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
      expect(head.body.length).toBe(0);

      // With Expect: 100-continue the client never has to send its body.
      proxy.inject({ op: 'PutObject', fault: { kind: 'status', status: 503, code: 'SlowDown' } });
      const early = await send(proxy.endpoint, { method: 'PUT', body: BIG, expectContinue: true });
      expect(early).toMatchObject({ status: 503, continued: false });

      expect(upstream.seen).toHaveLength(0);
      expect(proxy.log.map((e) => [e.op, e.fault, e.status])).toEqual([
        ['PutObject', 'status', 503],
        ['GetObject', 'status', 500],
        ['HeadObject', 'status', 404],
        ['PutObject', 'status', 503],
      ]);
    });

    it('reset: the client gets a reset as soon as its head arrives, nothing is forwarded', async () => {
      proxy.inject({ op: 'DeleteObject', fault: { kind: 'reset' } });
      expect(RESET).toContain(await failure(send(proxy.endpoint, { method: 'DELETE' })));
      proxy.inject({ op: 'PutObject', fault: { kind: 'reset' } });
      expect(RESET).toContain(await failure(send(proxy.endpoint, { method: 'PUT', body: BIG })));
      await pause(50);
      expect(upstream.seen).toHaveLength(0);
      expect(proxy.log.map((e) => [e.op, e.fault, e.status])).toEqual([
        ['DeleteObject', 'reset', undefined],
        ['PutObject', 'reset', undefined],
      ]);
    });
  });

  describe('rules', () => {
    const slowDown = { kind: 'status', status: 503, code: 'SlowDown' } as const;
    const statuses = async (count: number, options: SendOptions): Promise<number[]> => {
      const result = [];
      for (let i = 0; i < count; i += 1) result.push((await send(proxy.endpoint, options)).status);
      return result;
    };

    it('after skips matching requests, times counts the faulted ones, then the rule is spent', async () => {
      const rule = proxy.inject({ op: 'HeadObject', fault: slowDown, after: 1, times: 2 });
      await send(proxy.endpoint); // a GetObject does not count
      expect(await statuses(4, { method: 'HEAD' })).toEqual([200, 503, 503, 200]);
      expect(rule).toMatchObject({ fired: 2, spent: true });
      expect(proxy.count('HeadObject')).toBe(4);
      expect(proxy.count('GetObject')).toBe(1);
      expect(upstream.seen.map((s) => s.method)).toEqual(['GET', 'HEAD', 'HEAD']);

      const always = proxy.inject({ op: 'HeadObject', fault: slowDown, times: Infinity });
      expect(await statuses(3, { method: 'HEAD' })).toEqual([503, 503, 503]);
      always.remove();
      expect(await statuses(1, { method: 'HEAD' })).toEqual([200]);
    });

    it('checks rules in order; a predicate sees the request; a skipped request goes on to later rules', async () => {
      proxy.inject({ op: (r) => r.url.startsWith('/bucket/a'), fault: { ...slowDown, status: 500 }, times: Infinity });
      proxy.inject({ op: 'GetObject', fault: { kind: 'status', status: 404, code: 'NoSuchKey' } });
      expect(await statuses(1, { path: '/bucket/a' })).toEqual([500]);
      expect(await statuses(2, { path: '/bucket/b' })).toEqual([404, 200]);
      expect(await statuses(1, { path: '/bucket/a' })).toEqual([500]);

      proxy.inject({ op: 'DeleteObject', fault: { ...slowDown, status: 500 }, after: 1 });
      proxy.inject({ op: 'DeleteObject', fault: slowDown });
      expect(await statuses(3, { method: 'DELETE', path: '/bucket/c' })).toEqual([503, 500, 200]);

      const seenByPredicate: string[] = [];
      proxy.inject({ op: (r) => (seenByPredicate.push(`${r.op} ${r.method} ${r.headers['x-tag']}`), false), fault: slowDown });
      await send(proxy.endpoint, { method: 'PUT', path: '/bucket/d', headers: { 'x-tag': 't' }, body: Buffer.from('x') });
      expect(seenByPredicate).toEqual(['PutObject PUT t']);

      proxy.clear();
      expect(await statuses(1, { path: '/bucket/a' })).toEqual([200]);
    });
  });

  describe('outage', () => {
    it('refuses connections and drops open ones until resumed, then serves on the same endpoint', async () => {
      const agent = new Agent({ keepAlive: true });
      try {
        expect((await send(proxy.endpoint, { agent })).status).toBe(200);
        const kept = Object.values(agent.freeSockets).flat()[0];
        expect(kept).toBeDefined();
        const keptClosed = new Promise((resolve) => kept?.once('close', resolve));

        // A request stalled when the outage begins is dropped, and never forwarded.
        proxy.inject({ op: 'PutObject', fault: { kind: 'stall', ms: 200 } });
        const stalled = failure(send(proxy.endpoint, { method: 'PUT', body: Buffer.from('x') }));
        await vi.waitFor(() => expect(proxy.log).toHaveLength(2));

        await proxy.outage();
        await keptClosed;
        expect(RESET).toContain(await stalled);
        expect(await failure(send(proxy.endpoint))).toBe('ECONNREFUSED');
        expect(await failure(send(proxy.endpoint, { agent }))).toBe('ECONNREFUSED');
        await proxy.resume();
        expect((await send(proxy.endpoint, { agent })).status).toBe(200);

        const over = proxy.outage(300);
        expect(await failure(send(proxy.endpoint))).toBe('ECONNREFUSED');
        await over;
        expect((await send(proxy.endpoint)).status).toBe(200);
        await pause(300);
        expect(upstream.seen.map((s) => s.method)).toEqual(['GET', 'GET', 'GET']);
        expect(proxy.log[1]).toMatchObject({ op: 'PutObject', fault: 'stall', error: 'connection dropped by an outage' });
      } finally {
        agent.destroy();
      }
    });

    it('close() during an outage ends the outage and does not listen again', async () => {
      const over = proxy.outage(60_000);
      await proxy.close();
      await over;
      expect(await failure(send(proxy.endpoint))).toBe('ECONNREFUSED');
    });
  });

  describe('client aborts and close()', () => {
    it('a client that goes away mid-body aborts the upstream request', async () => {
      let req: ClientRequest | undefined;
      const pending = new Promise<void>((resolve) => {
        req = request({ host: '127.0.0.1', port: new URL(proxy.endpoint).port, method: 'PUT', path: '/bucket/k', headers: { 'Content-Length': String(BIG.length) } });
        req.on('error', () => resolve());
        req.write(BIG.subarray(0, MiB));
      });
      await vi.waitFor(() => expect(upstream.seen[0]?.bytes).toBeGreaterThan(0));
      req?.destroy();
      await pending;
      await vi.waitFor(() => expect(upstream.seen[0]?.aborted).toBe(true));
      expect(upstream.seen[0]!.bytes).toBeLessThanOrEqual(MiB);
      await vi.waitFor(() => expect(proxy.log[0]?.error).toBe('client went away'));
    });

    it('a client that goes away mid-response closes the upstream response', async () => {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: new URL(proxy.endpoint).port, path: '/bucket/endless' }, (res) => {
          res.once('data', () => res.destroy());
          res.on('close', () => resolve());
        });
        req.on('error', reject);
        req.end();
      });
      await vi.waitFor(() => expect(upstream.seen[0]?.responseCutShort).toBe(true));
      expect(proxy.log[0]).toMatchObject({ status: 200, error: 'client went away' });
    });

    it('close() resolves with open keep-alive connections and a stalled request, and clears its timers', async () => {
      const timersBefore = activeTimeouts();
      const agent = new Agent({ keepAlive: true });
      const other = new Agent({ keepAlive: true });
      try {
        await send(proxy.endpoint, { agent });
        await send(proxy.endpoint, { path: '/bucket/k2', agent: other });
        expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);
        proxy.inject({ op: 'GetObject', fault: { kind: 'stall', ms: 60_000 } });
        const stalled = failure(send(proxy.endpoint, { path: '/bucket/stalled' }));
        await vi.waitFor(() => expect(proxy.log).toHaveLength(3));
        await proxy.close();
        expect(RESET).toContain(await stalled);
        expect(await failure(send(proxy.endpoint))).toBe('ECONNREFUSED');
        await proxy.close(); // twice is fine
        expect(activeTimeouts()).toBeLessThanOrEqual(timersBefore);
        expect(upstream.seen.map((s) => s.url)).toEqual(['/bucket/key', '/bucket/k2']);
        await vi.waitFor(() => expect(Object.values(agent.freeSockets).flat()).toHaveLength(0));
      } finally {
        agent.destroy();
        other.destroy();
      }
    });
  });
});
