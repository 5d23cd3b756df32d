/**
 * A real HTTP webhook receiver on 127.0.0.1 for relay tests: records every request (headers,
 * exact body) and answers as the test says (a status, hang, or a callback before answering).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedDelivery {
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** The `webhook-id` header. */
  delivery: string;
}

export type Answer = number | 'hang' | ((delivery: ReceivedDelivery, res: ServerResponse) => void);

export interface WebhookReceiver {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  received: ReceivedDelivery[];
  /** How the next requests are answered. @default 204 */
  answer: Answer;
  /** Resolves once `count` requests have arrived. */
  waitFor(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<WebhookReceiver> {
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const hanging = new Set<ServerResponse>();
  const receiver: WebhookReceiver = {
    url: '',
    received: [],
    answer: 204,
    waitFor: (count) =>
      receiver.received.length >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve })),
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const delivery: ReceivedDelivery = {
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        delivery: String(req.headers['webhook-id']),
      };
      receiver.received.push(delivery);
      for (const waiter of waiters.filter((w) => receiver.received.length >= w.count)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
      const answer = receiver.answer;
      if (answer === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
      } else if (typeof answer === 'function') {
        answer(delivery, res);
      } else {
        res.writeHead(answer).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}
