/**
 * 7. The outbox relay: 500 pending events delivered to a local receiver (batch 20), on each
 * store, vs the baseline of 500 signed POSTs of the same bodies at the same concurrency with
 * no database at all. The gap is what claiming and recording cost.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { MemoryUploadStore, type OutboxStore, type OutboxEmitter } from '../src/index.js';
import { OutboxRelay, deliveryHeaders } from '../src/outbox/index.js';
import { PostgresUploadStore, migrate } from '../src/postgres/index.js';
import { SqliteUploadStore } from '../src/sqlite/index.js';
import { ROUNDS, fmt, gc, heading, median, note, stop, table, timed, type Sample } from './util.js';

const COUNT = 500;
const BATCH = 20;
const SECRET = 'bench-secret';

type Store = OutboxStore & { outbox: OutboxEmitter };

const payload = (i: number) => ({
  file_id: randomUUID(),
  original_filename: `report-${i}.pdf`,
  content_type: 'application/pdf',
  size_bytes: 48_213,
  sha256: randomBytes(32).toString('hex'),
  url: `https://cdn.example.com/uploads/2026/11/report-${i}.pdf`,
  storage_key: `uploads/2026/11/report-${i}.pdf`,
});

async function emitAll(store: Store): Promise<void> {
  for (let i = 0; i < COUNT; i += 1) {
    await store.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: payload(i) });
  }
}

async function drain(store: Store): Promise<void> {
  const relay = new OutboxRelay({ store, batchSize: BATCH });
  let delivered = 0;
  for (;;) {
    const result = await relay.runOnce();
    delivered += result.delivered;
    if (result.claimed === 0) break;
  }
  if (delivered !== COUNT) throw new Error(`delivered ${delivered} of ${COUNT}`);
}

/** The same POSTs without any store: bodies signed and sent, BATCH at a time. */
async function rawPosts(url: string): Promise<void> {
  const bodies = Array.from({ length: COUNT }, (_, i) => ({ id: randomUUID(), body: JSON.stringify(payload(i)) }));
  for (let i = 0; i < COUNT; i += BATCH) {
    await Promise.all(
      bodies.slice(i, i + BATCH).map(async ({ id, body }) => {
        const response = await fetch(url, { method: 'POST', headers: deliveryHeaders({ id, eventType: 'file.stored' }, body, SECRET, { timestamp: Math.floor(Date.now() / 1000) }), body, redirect: 'manual' });
        await response.body?.cancel();
        if (response.status !== 204) throw new Error(`HTTP ${response.status}`);
      }),
    );
  }
}

export async function benchRelay(): Promise<void> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const pool = new pg.Pool({ connectionString: process.env['PG_TEST_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', max: 8 });
  const schema = `doorito_bench_${randomBytes(4).toString('hex')}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-bench-relay-'));
  try {
    await migrate(pool, { schema });
    const stores: Record<string, () => Promise<{ store: Store; close: () => Promise<void> }>> = {
      memory: async () => ({ store: new MemoryUploadStore(), close: async () => undefined }),
      sqlite: async () => {
        const store = new SqliteUploadStore({ database: path.join(dir, `${randomUUID()}.sqlite3`) });
        return { store, close: () => store.close() };
      },
      postgres: async () => {
        await pool.query(`TRUNCATE "${schema}".outbox_event, "${schema}".webhook_endpoint`);
        return { store: new PostgresUploadStore({ pool, schema }), close: async () => undefined };
      },
    };
    const samples = new Map<string, Sample[]>([['raw', []], ...Object.keys(stores).map((name): [string, Sample[]] => [name, []])]);
    const names = [...samples.keys()];
    for (let round = -1; round < ROUNDS; round += 1) {
      const shift = Math.max(0, round) % names.length;
      for (const name of [...names.slice(shift), ...names.slice(0, shift)]) {
        stop.signal.throwIfAborted();
        gc();
        let sample: Sample;
        if (name === 'raw') {
          sample = await timed(() => rawPosts(url));
        } else {
          const { store, close } = await (stores[name] as () => Promise<{ store: Store; close: () => Promise<void> }>)();
          await store.createWebhookEndpoint({ url, secret: SECRET });
          await emitAll(store);
          sample = await timed(() => drain(store));
          await close();
        }
        if (round >= 0) samples.get(name)?.push(sample);
      }
    }
    const rateOf = (name: string) => median((samples.get(name) ?? []).map((s) => (COUNT * 1000) / s.ms));
    const raw = rateOf('raw');
    heading(7, `Outbox relay: ${COUNT} events, batch ${BATCH}, to a local receiver (median of ${ROUNDS}, events/s)`);
    table(
      ['variant', 'events/s', 'vs raw POSTs', 'CPU ms / event'],
      [
        ['raw signed POSTs, no store', fmt(raw), '1.000x', fmt(median((samples.get('raw') ?? []).map((s) => s.cpuMs)) / COUNT, 3)],
        ...Object.keys(stores).map((name) => [
          `OutboxRelay on ${name}`,
          fmt(rateOf(name)),
          `${fmt(rateOf(name) / raw, 3)}x`,
          fmt(median((samples.get(name) ?? []).map((s) => s.cpuMs)) / COUNT, 3),
        ]),
      ],
    );
    note('Each relay round claims 20 events in one statement (one transaction on SQLite), POSTs them concurrently, and records the 20 outcomes in one more.');
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await pool.end();
    await rm(dir, { recursive: true, force: true });
    await new Promise((resolve) => server.close(resolve));
  }
}
