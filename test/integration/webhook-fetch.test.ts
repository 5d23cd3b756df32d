/**
 * The relay's fetch against a real HTTP server on 127.0.0.1: with the guard on, loopback is
 * refused before a byte (or a connection) reaches the server; with `allowPrivateNetworks: true`
 * the same POST arrives intact. Redirects are returned, aborts and timeouts cut the request, and
 * keep-alive reuses one socket for sequential POSTs.
 */
import { spawn } from 'node:child_process';
import { lookup as dnsLookup } from 'node:dns';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type LookupFunction } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebhookDestinationError, isWebhookDestinationError } from '../../src/errors.js';
import { createWebhookFetch, refuseNonPublicSocket } from '../../src/outbox/webhook-fetch.js';

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface TestServer {
  port: number;
  /** TCP connections accepted. */
  connections: number;
  received: Received[];
  /** How the next request is answered; 204 by default. */
  answer: (req: Received, res: ServerResponse) => void;
  /** Resolves when a request's headers arrive (its body may still be on the way). */
  nextRequest(): Promise<{ req: IncomingMessage; res: ServerResponse }>;
  server: Server;
}

let srv: TestServer;

beforeEach(async () => {
  const server = createServer();
  const waiting: Array<(value: { req: IncomingMessage; res: ServerResponse }) => void> = [];
  srv = {
    port: 0,
    connections: 0,
    received: [],
    answer: (_req, res) => res.writeHead(204).end(),
    nextRequest: () => new Promise((resolve) => waiting.push(resolve)),
    server,
  };
  server.on('connection', () => (srv.connections += 1));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    waiting.shift()?.({ req, res });
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const received = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      srv.received.push(received);
      srv.answer(received, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  srv.port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  srv.server.closeAllConnections();
  await new Promise<void>((resolve) => srv.server.close(() => resolve()));
});

const post = (body = '{"type":"upload.completed"}', extra: RequestInit = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1', 'x-webhook-event': 'upload.completed' },
  body,
  redirect: 'manual',
  ...extra,
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

/** Let any stray connection or request reach the server before counting. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('with the guard on (the default)', () => {
  it('refuses http://127.0.0.1:PORT/ with a WebhookDestinationError; the server sees no connection and no request', async () => {
    const fetch = createWebhookFetch();
    const error = await rejection(fetch(`http://127.0.0.1:${srv.port}/hook?token=s3cret`, post()));
    expect(isWebhookDestinationError(error)).toBe(true);
    const refused = error as WebhookDestinationError;
    expect(refused.code).toBe('E_WEBHOOK_DESTINATION');
    expect(refused.address).toBe('127.0.0.1');
    expect(refused.reason).toBe('loopback');
    expect(refused.url).toBe(`http://127.0.0.1:${srv.port}/hook`);
    expect(refused.message).toContain('127.0.0.1 is not a public address (loopback)');
    expect(refused.message).toContain('allowPrivateNetworks: true');
    expect(refused.message).not.toContain('s3cret');
    await settle();
    expect(srv.connections).toBe(0);
    expect(srv.received).toEqual([]);
  });

  it('refuses http://localhost:PORT/, whose addresses are loopback, before connecting', async () => {
    const error = await rejection(createWebhookFetch()(`http://localhost:${srv.port}/hook`, post()));
    expect(error).toBeInstanceOf(WebhookDestinationError);
    expect((error as WebhookDestinationError).address).toMatch(/^(127\.0\.0\.1|::1)$/);
    expect((error as WebhookDestinationError).reason).toBe('loopback');
    await settle();
    expect(srv.connections).toBe(0);
    expect(srv.received).toEqual([]);
  });

  it('filters what a custom resolver returns: a name that resolves to loopback is refused', async () => {
    const calls: string[] = [];
    const lookup: LookupFunction = (hostname, options, callback) => {
      calls.push(hostname);
      dnsLookup('127.0.0.1', options, callback);
    };
    const error = await rejection(createWebhookFetch({ lookup })(`http://hooks.example.test:${srv.port}/hook`, post()));
    expect(isWebhookDestinationError(error)).toBe(true);
    expect((error as WebhookDestinationError).address).toBe('127.0.0.1');
    expect(calls).toEqual(['hooks.example.test']);
    await settle();
    expect(srv.connections).toBe(0);
  });

  it('refuses an IPv4-mapped loopback literal', async () => {
    const error = await rejection(createWebhookFetch()(`http://[::ffff:127.0.0.1]:${srv.port}/hook`, post()));
    expect((error as WebhookDestinationError).reason).toBe('IPv4-mapped loopback');
    expect(srv.received).toEqual([]);
  });

  it('checks the address a socket actually connected to, before its queued writes go out', async () => {
    const socket = connect({ host: '127.0.0.1', port: srv.port });
    const errors: unknown[] = [];
    socket.on('error', (error) => errors.push(error));
    const refused = new Promise<WebhookDestinationError>((resolve) =>
      refuseNonPublicSocket(socket, `http://127.0.0.1:${srv.port}/hook?token=s3cret`, (error) => {
        socket.destroy(error);
        resolve(error);
      }),
    );
    // Queued while connecting, as an http request's bytes are: the check runs first.
    socket.write('POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n');
    const error = await refused;
    expect(error.address).toBe('127.0.0.1');
    expect(error.reason).toBe('loopback');
    expect(error.url).toBe(`http://127.0.0.1:${srv.port}/hook`);
    await settle();
    expect(socket.destroyed).toBe(true);
    expect(errors[0]).toBe(error);
    expect(srv.received).toEqual([]);
  });
});

describe('with allowPrivateNetworks: true', () => {
  it('delivers the POST with its method, path, query, headers and body, and returns 204 as is', async () => {
    const fetch = createWebhookFetch({ allowPrivateNetworks: true });
    const body = JSON.stringify({ type: 'upload.completed', data: { key: 'uploads/报告.pdf' } });
    const response = await fetch(`http://127.0.0.1:${srv.port}/hooks/in?tenant=7`, post(body));
    expect(response).toBeInstanceOf(Response);
    expect(response.status).toBe(204);
    expect(response.ok).toBe(true);
    expect(response.body).toBeNull();
    expect(srv.received).toHaveLength(1);
    const [got] = srv.received;
    expect(got?.method).toBe('POST');
    expect(got?.path).toBe('/hooks/in?tenant=7');
    expect(got?.body).toBe(body);
    expect(got?.headers['content-type']).toBe('application/json');
    expect(got?.headers['webhook-id']).toBe('msg_1');
    expect(got?.headers['x-webhook-event']).toBe('upload.completed');
    expect(got?.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  });

  it('delivers to localhost too', async () => {
    const response = await createWebhookFetch({ allowPrivateNetworks: true })(`http://localhost:${srv.port}/hook`, post());
    expect(response.status).toBe(204);
    expect(srv.received).toHaveLength(1);
  });

  it('returns a 500 with its headers and body', async () => {
    srv.answer = (_req, res) => res.writeHead(500, { 'content-type': 'text/plain', 'x-trace': 'abc' }).end('boom');
    const response = await createWebhookFetch({ allowPrivateNetworks: true })(`http://127.0.0.1:${srv.port}/hook`, post());
    expect(response.status).toBe(500);
    expect(response.ok).toBe(false);
    expect(response.headers.get('x-trace')).toBe('abc');
    expect(await response.text()).toBe('boom');
  });

  it('returns a 302 without following it', async () => {
    srv.answer = (req, res) =>
      req.path === '/hook' ? res.writeHead(302, { location: `/elsewhere` }).end() : res.writeHead(200).end('followed');
    const response = await createWebhookFetch({ allowPrivateNetworks: true })(`http://127.0.0.1:${srv.port}/hook`, post());
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe('/elsewhere');
    await response.body?.cancel();
    await settle();
    expect(srv.received.map((r) => r.path)).toEqual(['/hook']);
  });

  it("rejects a redirect when redirect is 'error'", async () => {
    srv.answer = (_req, res) => res.writeHead(307, { location: '/elsewhere' }).end();
    const error = await rejection(
      createWebhookFetch({ allowPrivateNetworks: true })(`http://127.0.0.1:${srv.port}/hook`, post(undefined, { redirect: 'error' })),
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(srv.received).toHaveLength(1);
  });

  it('aborting mid-request rejects with the reason and closes the connection', async () => {
    srv.answer = () => undefined; // never answers
    const controller = new AbortController();
    const pending = createWebhookFetch({ allowPrivateNetworks: true })(`http://127.0.0.1:${srv.port}/hook`, post(undefined, { signal: controller.signal }));
    const { req } = await srv.nextRequest();
    const closed = new Promise<void>((resolve) => req.socket.once('close', () => resolve()));
    const reason = new Error('relay stopping');
    controller.abort(reason);
    expect(await rejection(pending)).toBe(reason);
    await closed;
    expect(req.socket.destroyed).toBe(true);
  });

  it('rejects at once for an already aborted signal, sending nothing', async () => {
    const error = await rejection(
      createWebhookFetch({ allowPrivateNetworks: true })(`http://127.0.0.1:${srv.port}/hook`, post(undefined, { signal: AbortSignal.abort() })),
    );
    expect((error as Error).name).toBe('AbortError');
    await settle();
    expect(srv.connections).toBe(0);
  });

  it('times out with AbortSignal.timeout', async () => {
    srv.answer = () => undefined;
    const started = Date.now();
    const error = await rejection(
      createWebhookFetch({ allowPrivateNetworks: true })(`http://127.0.0.1:${srv.port}/hook`, post(undefined, { signal: AbortSignal.timeout(150) })),
    );
    expect((error as Error).name).toBe('TimeoutError');
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(srv.received).toHaveLength(1);
  });

  it('an abort after the headers cuts the body stream', async () => {
    srv.answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
    };
    const controller = new AbortController();
    const response = await createWebhookFetch({ allowPrivateNetworks: true })(
      `http://127.0.0.1:${srv.port}/hook`,
      post(undefined, { signal: controller.signal }),
    );
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString()).toBe('partial');
    const reason = new Error('relay stopping');
    controller.abort(reason);
    await expect(reader.read()).rejects.toBe(reason);
  });

  it('keep-alive reuses one socket for sequential POSTs, also when the caller cancels a short body', async () => {
    const fetch = createWebhookFetch({ allowPrivateNetworks: true });
    for (let i = 0; i < 3; i += 1) {
      const response = await fetch(`http://127.0.0.1:${srv.port}/hook`, post(`{"n":${i}}`));
      expect(response.status).toBe(204);
    }
    srv.answer = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    for (let i = 0; i < 3; i += 1) {
      const response = await fetch(`http://127.0.0.1:${srv.port}/hook`, post(`{"n":${i}}`));
      expect(response.status).toBe(200);
      // As the relay does: the answer's body is not used.
      await response.body?.cancel();
    }
    // A body still arriving when the caller cancels is drained, not cut, so the socket survives.
    srv.answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2000' });
      res.write('x'.repeat(1000));
      setTimeout(() => res.end('y'.repeat(1000)), 20);
    };
    for (let i = 0; i < 2; i += 1) {
      const response = await fetch(`http://127.0.0.1:${srv.port}/hook`, post());
      await response.body?.cancel();
    }
    await settle();
    expect(srv.received).toHaveLength(8);
    expect(srv.connections).toBe(1);
  });

  it.each([
    ['a long body (1 MiB, over the 64 KiB drain limit)', (res: ServerResponse) => res.writeHead(200, { 'content-length': String(1 << 20) }).end(Buffer.alloc(1 << 20))],
    ['an unbounded body (chunked, never ends)', (res: ServerResponse) => res.writeHead(200).write(Buffer.alloc(1000))],
  ])('cuts, rather than drains, %s the caller cancels', async (_name, answer) => {
    const fetch = createWebhookFetch({ allowPrivateNetworks: true });
    srv.answer = (_req, res) => answer(res);
    const response = await fetch(`http://127.0.0.1:${srv.port}/hook`, post());
    await response.body?.cancel();
    srv.answer = (_req, res) => res.writeHead(204).end();
    expect((await fetch(`http://127.0.0.1:${srv.port}/hook`, post())).status).toBe(204);
    expect(srv.connections).toBe(2);
  });

  it('opens a connection per POST with keepAlive: false', async () => {
    const fetch = createWebhookFetch({ allowPrivateNetworks: true, keepAlive: false });
    for (let i = 0; i < 3; i += 1) expect((await fetch(`http://127.0.0.1:${srv.port}/hook`, post())).status).toBe(204);
    expect(srv.connections).toBe(3);
  });

  it('sends once more on a new connection when a kept-alive socket turns out closed by the server', async () => {
    // A server in another process that closes each connection 50 ms after its answer, while this
    // process is too busy to see the FIN: the next POST goes out on the dead socket.
    const child = spawn(process.execPath, ['-e', `
      const http = require('node:http');
      let requests = 0;
      const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          requests += 1;
          res.writeHead(204, { 'x-requests': String(requests) }).end();
          setTimeout(() => req.socket.destroy(), 50);
        });
      });
      server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = Number(await new Promise<string>((resolve) => child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8').trim()))));
      const fetch = createWebhookFetch({ allowPrivateNetworks: true });
      const first = await fetch(`http://127.0.0.1:${port}/hook`, post());
      expect(first.status).toBe(204);
      await first.body?.cancel();
      // Block this thread past the server's close, so the socket still looks free and alive.
      const until = Date.now() + 300;
      while (Date.now() < until) {
        // busy
      }
      const second = await fetch(`http://127.0.0.1:${port}/hook`, post());
      expect(second.status).toBe(204);
      // The POST on the dead socket never reached the server: it counted two requests in all.
      expect(second.headers.get('x-requests')).toBe('2');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
