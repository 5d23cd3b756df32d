/**
 * What only the Postgres outbox has: real concurrency between relays on separate connections
 * (the recount of an event under its lock, the lock order that keeps disables from deadlocking)
 * and the store options. In a schema of its own, dropped afterwards.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isWebhookDestinationError, type ClaimedDelivery, type CompletedDelivery } from '../../src/index.js';
import { PostgresUploadStore } from '../../src/postgres/index.js';
import { testPool, useMigratedSchema } from '../helpers/postgres.js';

const { pool, available } = await testPool(16);
const schema = `doorito_test_${randomBytes(4).toString('hex')}`;
const later = (ms: number, from = new Date()) => new Date(from.getTime() + ms);

describe.runIf(available)('PostgresUploadStore outbox [postgres]', () => {
  useMigratedSchema(pool, schema);

  /** Two relays: stores on the same tables, each statement on a connection of its own. */
  const relays = () => [0, 1].map(() => new PostgresUploadStore({ pool, schema, allowPrivateNetworks: true }));
  /** One after the other, so that the deliveries of each event are next to each other in due order. */
  const emit = async (store: PostgresUploadStore, count: number) => {
    const events = [];
    for (let i = 0; i < count; i += 1) {
      events.push(await store.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} }));
    }
    return events;
  };
  const done = (c: ClaimedDelivery, extra: Partial<CompletedDelivery> = {}): CompletedDelivery => ({
    claimed: c.delivery,
    outcome: { status: 'delivered' },
    attempt: { at: new Date(), status: 204, durationMs: 1 },
    health: 'success',
    ...extra,
  });

  it('settles an event whose two deliveries two relays record at the same instant: never left pending', async () => {
    const [a, b] = relays() as [PostgresUploadStore, PostgresUploadStore];
    await a.createWebhookEndpoint({ url: 'http://127.0.0.1:9/one' });
    await a.createWebhookEndpoint({ url: 'http://127.0.0.1:9/two' });
    const events = await emit(a, 40);
    const now = later(1_000);
    for (let i = 0; i < events.length; i += 1) {
      // The two deliveries of one event are adjacent in due order: each relay takes one.
      const [first] = await a.claimDeliveries({ now, limit: 1, leaseUntil: later(60_000, now) });
      const [second] = await b.claimDeliveries({ now, limit: 1, leaseUntil: later(60_000, now) });
      expect(second?.event.id).toBe(first?.event.id);
      expect(await Promise.all([a.completeDeliveries([done(first!)], now), b.completeDeliveries([done(second!)], now)])).toEqual([[true], [true]]);
    }
    const statuses = await Promise.all(events.map(async ({ event }) => (await a.getEvent(event.id))?.status));
    expect(statuses).toEqual(events.map(() => 'delivered'));
  });

  it('lets relays disable one endpoint at once, and record deliveries of the same events to another, without a deadlock', async () => {
    const stores = [...relays(), ...relays()];
    const [first] = stores as [PostgresUploadStore];
    const gone = await first.createWebhookEndpoint({ url: 'http://127.0.0.1:9/gone' });
    await first.createWebhookEndpoint({ url: 'http://127.0.0.1:9/fine' });
    const events = await emit(first, 60);
    const now = later(1_000);
    const claims: ClaimedDelivery[][] = [];
    for (const store of stores) claims.push(await store.claimDeliveries({ now, limit: 25, leaseUntil: later(60_000, now) }));
    // Every relay records at once: 410 from the gone endpoint (disable it), 204 from the other.
    const reason = 'HTTP 410 Gone';
    const rounds = await Promise.all(
      stores.map((store, i) =>
        store.completeDeliveries(
          (claims[i] ?? []).map((c) =>
            c.endpoint.id === gone.id
              ? done(c, { outcome: { status: 'failed', errorMessage: 'HTTP 410' }, health: 'failure', disableEndpoint: { reason } })
              : done(c),
          ),
          now,
        ),
      ),
    );
    // Those to the other endpoint are all recorded; one to the gone endpoint may not be, when
    // another relay's disable failed it first.
    for (const [i, round] of rounds.entries()) {
      (claims[i] ?? []).forEach((c, j) => {
        if (c.endpoint.id !== gone.id) expect(round[j]).toBe(true);
      });
    }
    expect(await first.getWebhookEndpoint(gone.id)).toMatchObject({ isActive: false, disabledReason: reason });
    // 100 of the 120 deliveries were claimed and recorded; the 20 left over to the gone endpoint
    // failed with the disable, those to the other are still due.
    const toGone = await first.listDeliveries({ endpointId: gone.id, limit: 1000 });
    expect(toGone.every((d) => d.status === 'failed')).toBe(true);
    const left = await first.claimDeliveries({ now, limit: 100, leaseUntil: later(60_000, now) });
    expect(left.every((c) => c.endpoint.id !== gone.id)).toBe(true);
    await first.completeDeliveries(left.map((c) => done(c)), now);
    // Every event: its delivery to the gone endpoint failed, the other delivered.
    const statuses = await Promise.all(events.map(async ({ event }) => (await first.getEvent(event.id))?.status));
    expect(statuses).toEqual(events.map(() => 'failed'));
  });

  it('refuses an endpoint on a non-public address unless allowPrivateNetworks, storing nothing', async () => {
    const guarded = new PostgresUploadStore({ pool, schema });
    const error = await guarded.createWebhookEndpoint({ url: 'http://127.0.0.1:9/hook' }).catch((e: unknown) => e);
    expect(isWebhookDestinationError(error)).toBe(true);
    expect(await guarded.listWebhookEndpoints()).toEqual([]);
  });
});
