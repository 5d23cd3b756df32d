/**
 * SIGKILL of a relay process mid-round loses no delivery: a child relay (SQLite file, Postgres)
 * is killed while the receiver holds its POSTs; a survivor finishes after the lease; every
 * delivery ends delivered, every (event, endpoint) reached its endpoint at least once, and only
 * what the killed round held is sent twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { OutboxRelay } from '../../src/outbox/index.js';
import { PostgresUploadStore, migrate } from '../../src/postgres/index.js';
import { SqliteUploadStore } from '../../src/sqlite/index.js';
import type { RelayChildConfig } from '../fixtures/relay-child.js';
import { PG_TEST_URL, testPool } from '../helpers/postgres.js';
import { startReceiver } from '../helpers/webhook-receiver.js';
import type { RelayStore } from '../contract/outbox-relay-contract.js';

const CHILD = fileURLToPath(new URL('../fixtures/relay-child.ts', import.meta.url));

function startChild(config: RelayChildConfig): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, RELAY_CHILD: JSON.stringify(config) }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`relay child exited (${String(code)}) before READY`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString('utf8').includes('READY')) resolve(child);
    });
  });
}

const killed = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

async function crashRound(store: RelayStore, config: RelayChildConfig): Promise<void> {
  const receiver = await startReceiver();
  try {
    const endpoints = [
      await store.createWebhookEndpoint({ url: `${receiver.url}/a` }),
      await store.createWebhookEndpoint({ url: `${receiver.url}/b` }),
    ];
    const events: string[] = [];
    for (let i = 0; i < 60; i += 1) events.push((await store.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } })).event.id);
    for (let round = 0; round < 2; round += 1) {
      // Answer the first POSTs, then hold the rest: the child is killed with a round in flight.
      const answerUpTo = receiver.received.length + 25;
      receiver.answer = (d, res) => {
        if (receiver.received.indexOf(d) < answerUpTo) res.writeHead(204).end();
        // else: never answered; the SIGKILL cuts the connection.
      };
      const child = await startChild(config);
      await receiver.waitFor(answerUpTo + 3);
      await killed(child);
    }
    receiver.answer = 204;
    const survivor = new OutboxRelay({ store, batchSize: 50, timeoutMs: 1_000, leaseMs: 2_000, allowPrivateNetworks: true });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const pending = await store.listDeliveries({ status: 'pending', limit: 1 });
      if (pending.length === 0 || Date.now() > deadline) break;
      await survivor.runOnce();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const deliveries = (await Promise.all(events.map((id) => store.listDeliveries({ eventId: id })))).flat();
    expect(deliveries).toHaveLength(events.length * endpoints.length);
    expect(deliveries.filter((d) => d.status !== 'delivered')).toEqual([]);
    for (const id of events) expect(await store.getEvent(id)).toMatchObject({ status: 'delivered' });
    const got = new Map<string, number>();
    for (const d of receiver.received) got.set(`${d.delivery} ${d.path}`, (got.get(`${d.delivery} ${d.path}`) ?? 0) + 1);
    for (const id of events) for (const path of ['/a', '/b']) expect(got.get(`${id} ${path}`), `${id} ${path}`).toBeGreaterThanOrEqual(1);
    const twice = [...got.values()].filter((n) => n > 1).length;
    console.log(`[relay-crash ${config.store}] ${events.length} events × 2 endpoints, relay SIGKILLed twice mid-round: ${receiver.received.length} POSTs, ${twice} deliveries sent again, 0 lost`);
    // Only what the killed rounds held in flight can be sent twice (two rounds of at most 10).
    expect(twice).toBeLessThanOrEqual(20);
  } finally {
    await receiver.close();
  }
}

describe('relay SIGKILLed mid-round [sqlite]', () => {
  it('loses nothing on a SQLite file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'doorito-relay-crash-'));
    const file = join(dir, 'outbox.db');
    const store = new SqliteUploadStore({ database: file, allowPrivateNetworks: true });
    try {
      await crashRound(store as unknown as RelayStore, { store: 'sqlite', file });
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

const { pool, available } = await testPool();
describe.runIf(available)('relay SIGKILLed mid-round [postgres]', () => {
  const schema = `doorito_crash_${randomBytes(4).toString('hex')}`;
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('loses nothing on Postgres', async () => {
    await migrate(pool, { schema });
    await crashRound(new PostgresUploadStore({ pool, schema, allowPrivateNetworks: true }) as unknown as RelayStore, { store: 'postgres', pgUrl: PG_TEST_URL, schema });
  }, 90_000);
});
