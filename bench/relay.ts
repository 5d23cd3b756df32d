/**
 * 7. The outbox relay at a backlog: with 1k, 10k and 100k pending deliveries, how fast one
 * `OutboxRelay` (batch 20) drains deliveries to a local receiver, on SQLite and Postgres, vs the
 * baseline of the same signed POSTs at the same concurrency through the same HTTP client with no
 * store at all. The gap is what claiming and recording cost; the ratio between backlogs shows
 * whether a claim costs more as the backlog grows (it must not: every step uses an index).
 * The memory store is left out: its claim and emit cost grows with what it holds (issue 13).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { OutboxEmitter, OutboxStore, UnitOfWork } from '../src/index.js';
import { OutboxRelay, deliveryHeaders, generateWebhookSecret } from '../src/outbox/index.js';
import { createWebhookFetch } from '../src/outbox/webhook-fetch.js';
import { PostgresUploadStore, migrate } from '../src/postgres/index.js';
import { SqliteUploadStore } from '../src/sqlite/index.js';
import { ROUNDS, fmt, gc, heading, median, note, stop, table, timed, type Sample } from './util.js';

/** Deliveries drained per sample. */
const MEASURE = 2_000;
const BATCH = 20;
const BACKLOGS = (process.env['BENCH_RELAY_BACKLOGS'] ?? '1000,10000,100000').split(',').map(Number);
const SECRET = generateWebhookSecret();

type Store = OutboxStore & UnitOfWork & { outbox: OutboxEmitter };

const payload = (i: number) => ({
  file_id: randomUUID(),
  original_filename: `report-${i}.pdf`,
  content_type: 'application/pdf',
  size_bytes: 48_213,
  sha256: randomBytes(32).toString('hex'),
  url: `https://cdn.example.com/uploads/2026/11/report-${i}.pdf`,
  storage_key: `uploads/2026/11/report-${i}.pdf`,
});

/** Emit `count` events (a delivery each), 1000 to a transaction; not timed. */
async function emit(store: Store, count: number): Promise<void> {
  for (let done = 0; done < count; done += 1000) {
    await store.transaction(async (tx) => {
      for (let i = done; i < Math.min(count, done + 1000); i += 1) {
        await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: payload(i) });
      }
    });
  }
}

/**
 * Drain MEASURE deliveries with `loops` rounds in flight at once (what `start()` does with
 * `concurrency: loops`), each round of `batch`.
 */
async function drain(relay: OutboxRelay, loops: number): Promise<number> {
  let delivered = 0;
  const loop = async () => {
    while (delivered < MEASURE) {
      const result = await relay.runOnce();
      if (result.claimed !== result.delivered) throw new Error(`round: ${JSON.stringify(result)}`);
      if (result.claimed === 0) throw new Error(`backlog ran out after ${delivered}`);
      delivered += result.delivered;
    }
  };
  await Promise.all(Array.from({ length: loops }, loop));
  return delivered;
}

/** The relay variants: [rounds in flight, batch]; both keep at most BATCH POSTs in flight, as the baseline does. */
const VARIANTS: ReadonlyArray<readonly [number, number]> = [
  [1, BATCH],
  [2, BATCH / 2],
];

/** The same POSTs without any store: bodies signed and sent through the relay's client, BATCH at a time. */
async function rawPosts(url: string, fetch: ReturnType<typeof createWebhookFetch>): Promise<void> {
  const bodies = Array.from({ length: MEASURE }, (_, i) => ({ id: randomUUID(), body: JSON.stringify(payload(i)) }));
  for (let i = 0; i < MEASURE; i += BATCH) {
    await Promise.all(
      bodies.slice(i, i + BATCH).map(async ({ id, body }) => {
        const headers = deliveryHeaders({ id, eventType: 'file.stored' }, body, SECRET, { timestamp: Math.floor(Date.now() / 1000) });
        const response = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
        await response.body?.cancel();
        if (response.status !== 204) throw new Error(`HTTP ${response.status}`);
      }),
    );
  }
}

/**
 * The receiver, in a process of its own as a real one would be (in this process it would take
 * CPU from the relay and block on SQLite's synchronous calls): 204 to everything, connections
 * kept alive for a minute, so that the untimed top-ups do not let them lapse.
 */
async function startReceiver(): Promise<{ url: string; close: () => void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const server = require('node:http').createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(204).end()); });
       server.keepAliveTimeout = 60000;
       server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`receiver exited (${String(code)})`)));
    child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8').trim()));
  });
  return { url: `http://127.0.0.1:${port}/hook`, close: () => child.kill('SIGKILL') };
}

export async function benchRelay(): Promise<void> {
  const receiver = await startReceiver();
  const url = receiver.url;
  const pool = new pg.Pool({ connectionString: process.env['PG_TEST_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', max: 8 });
  const schema = `doorito_bench_${randomBytes(4).toString('hex')}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doorito-bench-relay-'));
  const sqlite = new SqliteUploadStore({ database: path.join(dir, 'relay.sqlite3'), allowPrivateNetworks: true });
  try {
    await migrate(pool, { schema });
    const all: Record<string, Store> = {
      sqlite: sqlite as unknown as Store,
      postgres: new PostgresUploadStore({ pool, schema, allowPrivateNetworks: true }) as unknown as Store,
    };
    const chosen = (process.env['BENCH_RELAY_STORES'] ?? 'sqlite,postgres').split(',');
    const stores = Object.fromEntries(Object.entries(all).filter(([name]) => chosen.includes(name)));
    const relays = new Map<string, { relay: OutboxRelay; store: string; loops: number }>();
    for (const [name, store] of Object.entries(stores)) {
      await store.createWebhookEndpoint({ url, secret: SECRET });
      for (const [loops, batch] of VARIANTS) {
        relays.set(`${name} ${loops}x${batch}`, { relay: new OutboxRelay({ store, batchSize: batch, allowPrivateNetworks: true }), store: name, loops });
      }
    }
    const fetch = createWebhookFetch({ allowPrivateNetworks: true });
    const pending = new Map(Object.keys(stores).map((name) => [name, 0]));
    const rate = new Map<string, number>();
    const cpu = new Map<string, number>();
    const names = ['raw', ...relays.keys()];
    for (const backlog of BACKLOGS) {
      const samples = new Map<string, Sample[]>(names.map((name) => [name, []]));
      for (let round = -1; round < ROUNDS; round += 1) {
        const shift = Math.max(0, round) % names.length;
        for (const name of [...names.slice(shift), ...names.slice(0, shift)]) {
          stop.signal.throwIfAborted();
          let sample: Sample;
          if (name === 'raw') {
            gc();
            sample = await timed(() => rawPosts(url, fetch));
          } else {
            // Top up, so that the drain runs from backlog + MEASURE down to about the backlog.
            const variant = relays.get(name) as { relay: OutboxRelay; store: string; loops: number };
            const store = stores[variant.store] as Store;
            const missing = backlog + MEASURE - (pending.get(variant.store) ?? 0);
            if (missing > 0) await emit(store, missing);
            pending.set(variant.store, backlog + MEASURE);
            gc();
            let drained = 0;
            sample = await timed(async () => {
              drained = await drain(variant.relay, variant.loops);
            });
            // With two loops, the last rounds may take a few more than MEASURE.
            pending.set(variant.store, backlog + MEASURE - drained);
          }
          if (round >= 0) samples.get(name)?.push(sample);
        }
      }
      for (const name of names) {
        rate.set(`${name} ${backlog}`, median((samples.get(name) ?? []).map((s) => (MEASURE * 1000) / s.ms)));
        cpu.set(`${name} ${backlog}`, median((samples.get(name) ?? []).map((s) => s.cpuMs)) / MEASURE);
      }
    }
    heading(7, `Outbox relay: ${MEASURE} deliveries drained at a backlog of ${BACKLOGS.join(', ')} pending, batch ${BATCH}, to a local receiver (median of ${ROUNDS}, deliveries/s)`);
    const first = BACKLOGS[0] as number;
    table(
      ['variant', 'backlog', 'deliveries/s', 'vs raw POSTs', `vs its ${first}`, 'CPU ms / delivery'],
      names.flatMap((name) =>
        BACKLOGS.map((backlog) => {
          const r = rate.get(`${name} ${backlog}`) ?? 0;
          const raw = rate.get(`raw ${backlog}`) ?? 1;
          return [
            name === 'raw' ? `raw signed POSTs, ${BATCH} at a time` : `relay on ${name.replace(/ (\d)x(\d+)$/u, ', $1 round(s) × $2')}`,
            String(backlog),
            fmt(r),
            `${fmt(r / raw, 3)}x`,
            `${fmt(r / (rate.get(`${name} ${first}`) ?? 1), 3)}x`,
            fmt(cpu.get(`${name} ${backlog}`) ?? 0, 3),
          ];
        }),
      ),
    );
    note('A round claims its batch in one statement (one transaction on SQLite), POSTs them concurrently, and records the outcomes in one transaction (one function call on Postgres). "2 round(s) × 10" is start() with concurrency 2: one round claims or records while the other\'s POSTs are out; at most 20 POSTs in flight, as in the baseline.');
  } finally {
    await sqlite.close();
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await pool.end();
    await rm(dir, { recursive: true, force: true });
    receiver.close();
  }
}
