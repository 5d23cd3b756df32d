/**
 * Two real webhook receivers on 127.0.0.1, as third parties write them: one verifies with the
 * `standardwebhooks` package's `Webhook#verify`, one with `svix`'s. Each answers 204 when the
 * delivery verifies, else 401 with the package's reason, and records both.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';

export interface VerifyingReceiver {
  name: 'standardwebhooks' | 'svix';
  url: string;
  /** The endpoint's secret, set once the store has made it. */
  secret: string;
  received: Array<{ headers: IncomingHttpHeaders; body: Buffer; verified: boolean; error?: string }>;
  close(): Promise<void>;
}

const flat = (headers: IncomingHttpHeaders): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v]] : [])));

async function start(name: VerifyingReceiver['name']): Promise<VerifyingReceiver> {
  const receiver: VerifyingReceiver = {
    name,
    url: '',
    secret: '',
    received: [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        // Both read the clock with Date.now(), and both want the raw body as a string.
        if (name === 'standardwebhooks') new StandardWebhook(receiver.secret).verify(body.toString('utf8'), flat(req.headers));
        else new SvixWebhook(receiver.secret).verify(body.toString('utf8'), flat(req.headers));
        receiver.received.push({ headers: req.headers, body, verified: true });
        res.writeHead(204).end();
      } catch (error) {
        receiver.received.push({ headers: req.headers, body, verified: false, error: error instanceof Error ? error.message : String(error) });
        res.writeHead(401).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}

export const startVerifyingReceivers = (): Promise<VerifyingReceiver[]> => Promise.all([start('standardwebhooks'), start('svix')]);
