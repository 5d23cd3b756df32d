/**
 * Conformance suite of the OutboxStore port (what the relay needs): a delivery per (event,
 * endpoint) created with the event, claims under a lease, outcomes recorded only while the lease
 * holds, event status over its deliveries, endpoint health, dead letters and redelivery,
 * rotation, webhook endpoints, wake-ups. Run by every upload store's contract test (memory,
 * SQLite, Postgres).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  StorageConfigError,
  type ClaimedDelivery,
  type CompletedDelivery,
  type OutboxEmitter,
  type OutboxStore,
  type UnitOfWork,
  type WebhookEndpoint,
} from '../../src/index.js';

export interface OutboxStoreFixture {
  outbox: OutboxEmitter;
  unitOfWork: UnitOfWork;
  outboxStore: OutboxStore;
}

const later = (ms: number, from = new Date()) => new Date(from.getTime() + ms);

async function emitMany(fx: OutboxStoreFixture, count: number, eventType = 'file.stored'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const { event } = await fx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType, payload: { i } });
    ids.push(event.id);
  }
  return ids;
}

const endpoint = (fx: OutboxStoreFixture, name: string, extra: { eventTypes?: string[]; isActive?: boolean } = {}): Promise<WebhookEndpoint> =>
  fx.outboxStore.createWebhookEndpoint({ url: `http://127.0.0.1:9/${name}`, ...extra });

const claim = (fx: OutboxStoreFixture, now: Date, limit = 100, leaseMs = 60_000): Promise<ClaimedDelivery[]> =>
  fx.outboxStore.claimDeliveries({ now, limit, leaseUntil: later(leaseMs, now) });

const done = (c: ClaimedDelivery, outcome: CompletedDelivery['outcome'], extra: Omit<CompletedDelivery, 'claimed' | 'outcome'> = {}): CompletedDelivery => ({
  claimed: c.delivery,
  outcome,
  ...extra,
});

const attemptAt = (at: Date, status?: number) => ({ at, durationMs: 12, ...(status === undefined ? {} : { status }), ...(status === 200 ? {} : { error: `HTTP ${status ?? 'none'}` }) });

/** Call inside a describe whose beforeEach sets up a fresh, empty store. */
export function outboxStoreContract(fixture: () => OutboxStoreFixture): void {
  describe('outbox store (relay port)', () => {
    it('creates with each event a pending delivery, due at once, for every active endpoint that subscribes to it', async () => {
      const fx = fixture();
      const all = await endpoint(fx, 'all');
      const stored = await endpoint(fx, 'stored', { eventTypes: ['file.stored'] });
      await endpoint(fx, 'expiring', { eventTypes: ['file.expiring'] });
      await endpoint(fx, 'inactive', { isActive: false });
      const notices = await endpoint(fx, 'notices', { eventTypes: ['webhook.delivery_exhausted'] });
      const [id] = await emitMany(fx, 1);
      const event = await fx.outboxStore.getEvent(id as string);
      expect(event).toMatchObject({ id, status: 'pending', payload: { i: 0 } });
      expect(event?.deliveredAt).toBeUndefined();
      const deliveries = await fx.outboxStore.listDeliveries({ eventId: id as string });
      expect(deliveries.map((d) => d.endpointId).sort()).toEqual([all.id, stored.id].sort());
      for (const d of deliveries) {
        expect(d).toMatchObject({ eventId: id, eventType: 'file.stored', status: 'pending', attempts: 0, attemptLog: [] });
        expect(d.nextAttemptAt.getTime()).toBe(event!.createdAt.getTime());
        expect(await fx.outboxStore.getDelivery(d.id)).toEqual(d);
      }
      // A notice reaches only the endpoints that list it, never one subscribed to "everything".
      const [notice] = await emitMany(fx, 1, 'webhook.delivery_exhausted');
      expect((await fx.outboxStore.listDeliveries({ eventId: notice as string })).map((d) => d.endpointId)).toEqual([notices.id]);
      expect(await fx.outboxStore.getEvent(randomUUID())).toBeUndefined();
      expect(await fx.outboxStore.getDelivery(randomUUID())).toBeUndefined();
      expect(await fx.outboxStore.getDelivery('not-a-delivery')).toBeUndefined();
    });

    it('marks delivered at once an event that no active endpoint subscribes to, and adds nothing for a duplicate', async () => {
      const fx = fixture();
      await endpoint(fx, 'expiring', { eventTypes: ['file.expiring'] });
      const [id] = await emitMany(fx, 1);
      expect(await fx.outboxStore.getEvent(id as string)).toMatchObject({ status: 'delivered' });
      expect(await fx.outboxStore.listDeliveries({ eventId: id as string })).toEqual([]);
      const a = await endpoint(fx, 'a');
      const input = { aggregateType: 'UploadFile', aggregateId: 'same', eventType: 'file.stored', payload: {} };
      const first = await fx.outbox.emit(input);
      const again = await fx.outbox.emit(input);
      expect(again).toMatchObject({ duplicate: true, event: { id: first.event.id } });
      expect((await fx.outboxStore.listDeliveries({ eventId: first.event.id })).map((d) => d.endpointId)).toEqual([a.id]);
    });

    it('creates the deliveries in the transaction of the event: rolled back with it', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      await fx.unitOfWork
        .transaction(async (tx) => {
          await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'rolled-back', eventType: 'file.stored', payload: {} });
          throw new Error('rolled back');
        })
        .catch(() => undefined);
      expect(await fx.outboxStore.listDeliveries()).toEqual([]);
      const { event } = await fx.unitOfWork.transaction((tx) => tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'kept', eventType: 'file.stored', payload: {} }));
      expect((await fx.outboxStore.listDeliveries()).map((d) => d.eventId)).toEqual([event.id]);
    });

    it('claims due deliveries under a lease, with their event and endpoint: an attempt each, not claimable again until the lease ends', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      const b = await endpoint(fx, 'b');
      const ids = await emitMany(fx, 3);
      const now = later(1_000);
      const leaseUntil = later(60_000, now);
      const first = await fx.outboxStore.claimDeliveries({ now, limit: 4, leaseUntil });
      expect(first).toHaveLength(4);
      for (const c of first) {
        expect(c.delivery).toMatchObject({ status: 'pending', attempts: 1, nextAttemptAt: leaseUntil });
        expect(c.event).toMatchObject({ id: c.delivery.eventId, eventType: 'file.stored', aggregateType: 'UploadFile' });
        expect(ids).toContain(c.event.id);
        expect(c.endpoint.id).toBe(c.delivery.endpointId);
        expect(c.endpoint.secret).toBe(c.endpoint.id === a.id ? a.secret : b.secret);
        expect(c.endpoint.url).toBe(c.endpoint.id === a.id ? a.url : b.url);
      }
      const second = await fx.outboxStore.claimDeliveries({ now, limit: 10, leaseUntil });
      expect(second).toHaveLength(2);
      expect(new Set([...first, ...second].map((c) => c.delivery.id)).size).toBe(6);
      expect(await fx.outboxStore.claimDeliveries({ now, limit: 10, leaseUntil })).toEqual([]);
      // After the lease, an unfinished claim (a relay that died) is claimable again.
      const again = await fx.outboxStore.claimDeliveries({ now: later(1, leaseUntil), limit: 10, leaseUntil: later(120_000, now) });
      expect(again).toHaveLength(6);
      expect(again.every((c) => c.delivery.attempts === 2)).toBe(true);
    });

    it('claims the earliest due first, and makes a delivery due from the instant its event was created (milliseconds)', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      for (let i = 0; i < 5; i += 1) {
        const { event } = await fx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } });
        const claimed = await fx.outboxStore.claimDeliveries({ now: event.createdAt, limit: 10, leaseUntil: later(60_000, event.createdAt) });
        expect(claimed.map((c) => c.event.id)).toEqual([event.id]);
      }
      const ids = await emitMany(fx, 3);
      expect(await fx.outboxStore.claimDeliveries({ now: later(-60_000), limit: 10, leaseUntil: later(60_000) })).toEqual([]);
      const inOrder = await claim(fx, later(1_000), 2);
      expect(inOrder.map((c) => c.event.id)).toEqual(ids.slice(0, 2));
    });

    it('records delivered, retry and failed outcomes only while the lease holds, with the attempt log and the event status over its deliveries', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      const b = await endpoint(fx, 'b');
      const [x, y] = await emitMany(fx, 2);
      const now = later(1_000);
      const claimed = await claim(fx, now);
      const of = (event: string | undefined, ep: WebhookEndpoint) => claimed.find((c) => c.event.id === event && c.endpoint.id === ep.id)!;
      const at = later(2_000, now);
      const retryAt = later(120_000, now);
      const recorded = await fx.outboxStore.completeDeliveries(
        [
          done(of(x, a), { status: 'delivered' }, { attempt: attemptAt(now, 200), health: 'success' }),
          done(of(x, b), { status: 'pending', nextAttemptAt: retryAt, errorMessage: 'HTTP 500' }, { attempt: attemptAt(now, 500), health: 'failure' }),
          done(of(y, a), { status: 'delivered' }, { attempt: attemptAt(now, 204) }),
          done(of(y, b), { status: 'failed', errorMessage: 'timed out after 30000 ms' }, { attempt: { at: now, error: 'timed out after 30000 ms', durationMs: 30_000 } }),
          { claimed: { id: 'not-a-delivery', nextAttemptAt: now }, outcome: { status: 'delivered' } },
          { claimed: { id: randomUUID(), nextAttemptAt: now }, outcome: { status: 'delivered' } },
        ],
        at,
      );
      expect(recorded).toEqual([true, true, true, true, false, false]);
      expect(await fx.outboxStore.getDelivery(of(x, a).delivery.id)).toMatchObject({
        status: 'delivered',
        deliveredAt: at,
        attempts: 1,
        lastStatus: 200,
        lastDurationMs: 12,
        attemptLog: [{ at: now, status: 200, durationMs: 12 }],
      });
      const retrying = await fx.outboxStore.getDelivery(of(x, b).delivery.id);
      expect(retrying).toMatchObject({ status: 'pending', nextAttemptAt: retryAt, lastStatus: 500, lastError: 'HTTP 500', attempts: 1 });
      expect(retrying?.attemptLog).toEqual([{ at: now, status: 500, error: 'HTTP 500', durationMs: 12 }]);
      const timedOut = await fx.outboxStore.getDelivery(of(y, b).delivery.id);
      expect(timedOut).toMatchObject({ status: 'failed', lastError: 'timed out after 30000 ms', lastDurationMs: 30_000 });
      expect(timedOut?.lastStatus).toBeUndefined();
      // x waits on b's retry; y has a dead letter.
      expect(await fx.outboxStore.getEvent(x as string)).toMatchObject({ status: 'pending' });
      expect(await fx.outboxStore.getEvent(y as string)).toMatchObject({ status: 'failed', errorMessage: 'timed out after 30000 ms' });
      // Recorded once: the same claim cannot record again.
      expect(await fx.outboxStore.completeDeliveries([done(of(x, a), { status: 'failed', errorMessage: 'late' })], at)).toEqual([false]);
      // Health: a's success, b's failure.
      const health = new Map((await fx.outboxStore.listWebhookEndpoints()).map((e) => [e.id, e]));
      expect(health.get(a.id)).toMatchObject({ lastSuccessAt: at });
      expect(health.get(a.id)?.failingSince).toBeUndefined();
      expect(health.get(b.id)).toMatchObject({ failingSince: at });
      // Only the retry comes back, when due.
      expect(await claim(fx, later(-1, retryAt))).toEqual([]);
      const [retried] = await claim(fx, retryAt);
      expect(retried?.delivery).toMatchObject({ id: of(x, b).delivery.id, attempts: 2 });
      const last = later(1_000, retryAt);
      expect(await fx.outboxStore.completeDeliveries([done(retried!, { status: 'delivered' }, { attempt: attemptAt(retryAt, 200), health: 'success' })], last)).toEqual([true]);
      expect(await fx.outboxStore.getEvent(x as string)).toMatchObject({ status: 'delivered', deliveredAt: last });
      const healed = await fx.outboxStore.getWebhookEndpoint(b.id);
      expect(healed).toMatchObject({ lastSuccessAt: last });
      expect(healed?.failingSince).toBeUndefined();
      expect((await fx.outboxStore.getDelivery(retried!.delivery.id))?.attemptLog.map((l) => l.status)).toEqual([500, 200]);
    });

    it('keeps failingSince at the first failure of a run of failures', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      await emitMany(fx, 1);
      let now = later(1_000);
      const first = now;
      for (let i = 0; i < 3; i += 1) {
        const [c] = await claim(fx, now);
        await fx.outboxStore.completeDeliveries([done(c!, { status: 'pending', nextAttemptAt: later(1_000, now), errorMessage: 'HTTP 500' }, { attempt: attemptAt(now, 500), health: 'failure' })], now);
        now = later(2_000, now);
      }
      expect(await fx.outboxStore.getWebhookEndpoint(a.id)).toMatchObject({ failingSince: first });
    });

    it('keeps only the last attempts in the attempt log', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      await emitMany(fx, 1);
      let now = later(1_000);
      for (let i = 0; i < 13; i += 1) {
        const [c] = await claim(fx, now);
        await fx.outboxStore.completeDeliveries([done(c!, { status: 'pending', nextAttemptAt: later(1_000, now), errorMessage: `HTTP ${500 + i}` }, { attempt: attemptAt(now, 500 + i) })], now);
        now = later(2_000, now);
      }
      const [delivery] = await fx.outboxStore.listDeliveries();
      expect(delivery?.attempts).toBe(13);
      expect(delivery?.attemptLog.map((a) => a.status)).toEqual([503, 504, 505, 506, 507, 508, 509, 510, 511, 512]);
    });

    it('records a failed outcome without an attempt (nothing was sent) and leaves the log as it was', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      await emitMany(fx, 1);
      const now = later(1_000);
      const [c] = await claim(fx, now);
      expect(await fx.outboxStore.completeDeliveries([done(c!, { status: 'failed', errorMessage: 'endpoint inactive' })], now)).toEqual([true]);
      expect(await fx.outboxStore.getDelivery(c!.delivery.id)).toMatchObject({ status: 'failed', lastError: 'endpoint inactive', attemptLog: [] });
    });

    it('refuses the outcome of a claim whose lease another relay took over', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      await emitMany(fx, 1);
      const now = later(1_000);
      const [stale] = await claim(fx, now, 1, 10_000);
      const [fresh] = await claim(fx, later(20_000, now), 1, 60_000);
      expect(fresh?.delivery.id).toBe(stale?.delivery.id);
      expect(await fx.outboxStore.completeDeliveries([done(stale!, { status: 'delivered' })], later(30_000, now))).toEqual([false]);
      expect(await fx.outboxStore.getDelivery(stale!.delivery.id)).toMatchObject({ status: 'pending', attempts: 2 });
      expect(await fx.outboxStore.completeDeliveries([done(fresh!, { status: 'delivered' })], later(30_000, now))).toEqual([true]);
    });

    it('never hands the same delivery to two concurrent claims', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      await endpoint(fx, 'b');
      await emitMany(fx, 15);
      const now = later(1_000);
      const claims = await Promise.all(Array.from({ length: 5 }, () => claim(fx, now, 10)));
      const claimed = claims.flat().map((c) => c.delivery.id);
      expect(new Set(claimed).size).toBe(claimed.length);
      expect(claimed).toHaveLength(30);
    });

    it('disables an endpoint with an outcome: its other pending deliveries fail, and the notices given are emitted in the same transaction', async () => {
      const fx = fixture();
      const gone = await endpoint(fx, 'gone');
      const other = await endpoint(fx, 'other');
      const watcher = await endpoint(fx, 'watcher', { eventTypes: ['webhook.endpoint_disabled'] });
      const [x, y] = await emitMany(fx, 2);
      const now = later(1_000);
      const claimed = await claim(fx, now);
      const first = claimed.find((c) => c.event.id === x && c.endpoint.id === gone.id)!;
      const notice = { aggregateType: 'WebhookEndpoint', aggregateId: gone.id, eventType: 'webhook.endpoint_disabled', payload: { endpoint_id: gone.id } };
      const at = later(500, now);
      expect(
        await fx.outboxStore.completeDeliveries(
          [done(first, { status: 'failed', errorMessage: 'HTTP 410' }, { attempt: attemptAt(now, 410), health: 'failure', disableEndpoint: { reason: 'HTTP 410 Gone' }, emit: [notice] })],
          at,
        ),
      ).toEqual([true]);
      const disabled = await fx.outboxStore.getWebhookEndpoint(gone.id);
      expect(disabled).toMatchObject({ isActive: false, disabledAt: at, disabledReason: 'HTTP 410 Gone' });
      // y's delivery to it fails too, though this round holds its claim (its own outcome will not be recorded).
      const toGone = await fx.outboxStore.listDeliveries({ endpointId: gone.id });
      expect(toGone.map((d) => [d.eventId, d.status]).sort()).toEqual([[x, 'failed'], [y, 'failed']].sort());
      expect(toGone.find((d) => d.eventId === y)?.lastError).toBe('endpoint disabled: HTTP 410 Gone');
      expect((await fx.outboxStore.listDeliveries({ endpointId: other.id })).every((d) => d.status === 'pending')).toBe(true);
      // The notice is an event with a delivery to the watcher only.
      const notices = await fx.outboxStore.listDeliveries({ endpointId: watcher.id });
      expect(notices).toHaveLength(1);
      expect(await fx.outboxStore.getEvent(notices[0]!.eventId)).toMatchObject({ eventType: 'webhook.endpoint_disabled', payload: { endpoint_id: gone.id } });
      // New events skip the disabled endpoint.
      const [z] = await emitMany(fx, 1);
      expect((await fx.outboxStore.listDeliveries({ eventId: z as string })).map((d) => d.endpointId)).toEqual([other.id]);
      // A second disable (another relay, another delivery) changes nothing and emits nothing more.
      const second = claimed.find((c) => c.event.id === x && c.endpoint.id === other.id)!;
      await fx.outboxStore.completeDeliveries([done(second, { status: 'delivered' }, { emit: [notice] })], at);
      expect(await fx.outboxStore.listDeliveries({ endpointId: watcher.id })).toHaveLength(1);
    });

    it('emits nothing for an outcome that is not recorded', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      const watcher = await endpoint(fx, 'watcher', { eventTypes: ['webhook.delivery_exhausted'] });
      await emitMany(fx, 1);
      const now = later(1_000);
      const [stale] = await claim(fx, now, 1, 10_000);
      await claim(fx, later(20_000, now), 1, 60_000);
      const notice = { aggregateType: 'WebhookDelivery', aggregateId: stale!.delivery.id, eventType: 'webhook.delivery_exhausted', payload: {} };
      expect(await fx.outboxStore.completeDeliveries([done(stale!, { status: 'failed', errorMessage: 'x' }, { emit: [notice] })], now)).toEqual([false]);
      expect(await fx.outboxStore.listDeliveries({ endpointId: watcher.id })).toEqual([]);
    });

    it('lists deliveries newest first, by status, endpoint, event and creation time, up to a limit', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      const b = await endpoint(fx, 'b');
      const ids = await emitMany(fx, 3);
      const all = await fx.outboxStore.listDeliveries();
      expect(all).toHaveLength(6);
      const order = [...all].sort((p, q) => q.createdAt.getTime() - p.createdAt.getTime() || (q.id < p.id ? -1 : q.id > p.id ? 1 : 0));
      expect(all.map((d) => d.id)).toEqual(order.map((d) => d.id));
      expect(new Set(all.map((d) => d.eventId))).toEqual(new Set(ids));
      expect((await fx.outboxStore.listDeliveries({ endpointId: a.id })).map((d) => d.id)).toEqual(all.filter((d) => d.endpointId === a.id).map((d) => d.id));
      expect(await fx.outboxStore.listDeliveries({ limit: 2 })).toHaveLength(2);
      const [c] = await claim(fx, later(1_000), 1);
      await fx.outboxStore.completeDeliveries([done(c!, { status: 'failed', errorMessage: 'HTTP 500' })], later(1_000));
      expect((await fx.outboxStore.listDeliveries({ status: 'failed' })).map((d) => d.id)).toEqual([c!.delivery.id]);
      expect(await fx.outboxStore.listDeliveries({ status: 'failed', endpointId: c!.endpoint.id === a.id ? b.id : a.id })).toEqual([]);
      expect(await fx.outboxStore.listDeliveries({ since: later(60_000) })).toEqual([]);
      expect(await fx.outboxStore.listDeliveries({ since: all[5]!.createdAt })).toHaveLength(6);
      expect(await fx.outboxStore.listDeliveries({ endpointId: 'not-an-endpoint' })).toEqual([]);
    });

    it('redelivers a dead letter or a delivered one: pending, due now, attempts 0, its log kept, its event pending again', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      const [x] = await emitMany(fx, 1);
      const now = later(1_000);
      const [c] = await claim(fx, now);
      await fx.outboxStore.completeDeliveries([done(c!, { status: 'failed', errorMessage: 'HTTP 500' }, { attempt: attemptAt(now, 500) })], now);
      expect(await fx.outboxStore.getEvent(x as string)).toMatchObject({ status: 'failed' });
      const at = later(5_000, now);
      const again = await fx.outboxStore.redeliver(c!.delivery.id, at);
      expect(again).toMatchObject({ id: c!.delivery.id, status: 'pending', attempts: 0, nextAttemptAt: at });
      expect(again?.attemptLog).toHaveLength(1);
      expect(await fx.outboxStore.getEvent(x as string)).toMatchObject({ status: 'pending' });
      const [next] = await claim(fx, at);
      expect(next?.delivery).toMatchObject({ id: c!.delivery.id, attempts: 1 });
      await fx.outboxStore.completeDeliveries([done(next!, { status: 'delivered' })], at);
      expect(await fx.outboxStore.getEvent(x as string)).toMatchObject({ status: 'delivered' });
      const replay = await fx.outboxStore.redeliver(c!.delivery.id, at);
      expect(replay).toMatchObject({ status: 'pending' });
      expect(replay?.deliveredAt).toBeUndefined();
      expect(await fx.outboxStore.redeliver(randomUUID(), at)).toBeUndefined();
      expect(await fx.outboxStore.redeliver('nope', at)).toBeUndefined();
    });

    it('redelivers an event to every endpoint, adding one for an endpoint created since', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      const [x] = await emitMany(fx, 1);
      const [c] = await claim(fx, later(1_000));
      await fx.outboxStore.completeDeliveries([done(c!, { status: 'delivered' })], later(1_000));
      const b = await endpoint(fx, 'b');
      await endpoint(fx, 'other-type', { eventTypes: ['file.expiring'] });
      const at = later(2_000);
      const deliveries = await fx.outboxStore.redeliverEvent(x as string, at);
      expect(deliveries.map((d) => d.endpointId).sort()).toEqual([a.id, b.id].sort());
      expect(deliveries.every((d) => d.status === 'pending' && d.attempts === 0)).toBe(true);
      expect((await claim(fx, at)).map((d) => d.endpoint.id).sort()).toEqual([a.id, b.id].sort());
      expect(await fx.outboxStore.redeliverEvent(randomUUID(), at)).toEqual([]);
    });

    it('recovers a disabled endpoint: active again, its failed deliveries since a point requeued, older ones left', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      await emitMany(fx, 1);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const cut = new Date();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const recent = await emitMany(fx, 2);
      const now = later(1_000);
      const claimed = await claim(fx, now);
      expect(claimed).toHaveLength(3);
      const [first, ...rest] = claimed;
      await fx.outboxStore.completeDeliveries(
        [
          done(first!, { status: 'failed', errorMessage: 'HTTP 410' }, { health: 'failure', disableEndpoint: { reason: 'HTTP 410 Gone' } }),
          ...rest.map((c) => done(c, { status: 'pending', nextAttemptAt: later(1_000, now), errorMessage: 'HTTP 500' })),
        ],
        now,
      );
      // The disable fails the other deliveries to it, whether their outcomes were recorded before or not.
      expect((await fx.outboxStore.listDeliveries({ endpointId: a.id, status: 'failed' })).length).toBe(3);
      const at = later(10_000, now);
      const recovered = await fx.outboxStore.recoverEndpoint(a.id, { since: cut, now: at });
      expect(recovered?.requeued).toBe(2);
      expect(recovered?.endpoint).toMatchObject({ id: a.id, isActive: true });
      expect(recovered?.endpoint.disabledAt).toBeUndefined();
      expect(recovered?.endpoint.disabledReason).toBeUndefined();
      expect(recovered?.endpoint.failingSince).toBeUndefined();
      expect((await claim(fx, at)).map((c) => c.event.id).sort()).toEqual([...recent].sort());
      expect(await fx.outboxStore.recoverEndpoint(randomUUID(), { since: cut })).toBeUndefined();
    });

    it('rotates a secret: the old one kept as previousSecret until the overlap ends, options checked first', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      const now = new Date(Date.UTC(2026, 11, 2, 12));
      const rotated = await fx.outboxStore.rotateWebhookSecret(a.id, { overlapHours: 2, now });
      expect(rotated).toMatchObject({ id: a.id, previousSecret: a.secret, previousSecretExpiresAt: later(2 * 3600_000, now) });
      expect(rotated?.secret).toMatch(/^whsec_/u);
      expect(rotated?.secret).not.toBe(a.secret);
      expect(await fx.outboxStore.getWebhookEndpoint(a.id)).toEqual(rotated);
      const given = 'whsec_' + Buffer.alloc(32, 3).toString('base64');
      const twice = await fx.outboxStore.rotateWebhookSecret(a.id, { secret: given, overlapHours: 0, now });
      expect(twice).toMatchObject({ secret: given, previousSecret: rotated?.secret, previousSecretExpiresAt: now });
      // The claim hands out both.
      await emitMany(fx, 1);
      const [c] = await claim(fx, later(1_000));
      expect(c?.endpoint).toMatchObject({ secret: given, previousSecret: rotated?.secret });
      for (const bad of [{ overlapHours: -1 }, { overlapHours: Number.NaN }, { secret: '' }, { secret: 'whsec_short' }]) {
        const error = await fx.outboxStore.rotateWebhookSecret(a.id, bad).catch((e: unknown) => e);
        expect(error, JSON.stringify(bad)).toBeInstanceOf(StorageConfigError);
        expect(await fx.outboxStore.rotateWebhookSecret(randomUUID(), bad).catch((e: unknown) => e)).toBeInstanceOf(StorageConfigError);
      }
      expect(await fx.outboxStore.getWebhookEndpoint(a.id)).toEqual(twice);
      expect(await fx.outboxStore.rotateWebhookSecret(randomUUID())).toBeUndefined();
    });

    it('deletes delivered events older than the cut-off with their deliveries, and only those', async () => {
      const fx = fixture();
      await endpoint(fx, 'a');
      const [oldOne, recent, pending] = await emitMany(fx, 3);
      const now = later(1_000);
      const claimed = await claim(fx, now);
      const of = (id: string | undefined) => claimed.find((c) => c.event.id === id)!;
      await fx.outboxStore.completeDeliveries([done(of(oldOne), { status: 'delivered' })], later(-10 * 3600_000, now));
      await fx.outboxStore.completeDeliveries([done(of(recent), { status: 'delivered' })], now);
      expect(await fx.outboxStore.deleteDeliveredEvents(later(-3600_000, now))).toBe(1);
      expect(await fx.outboxStore.getEvent(oldOne as string)).toBeUndefined();
      expect(await fx.outboxStore.getDelivery(of(oldOne).delivery.id)).toBeUndefined();
      expect(await fx.outboxStore.getEvent(recent as string)).toMatchObject({ status: 'delivered' });
      expect(await fx.outboxStore.getEvent(pending as string)).toMatchObject({ status: 'pending' });
      expect(await fx.outboxStore.deleteDeliveredEvents(later(-3600_000, now))).toBe(0);
    });

    it('deletes an endpoint with its deliveries: an event left without a pending delivery is no longer pending', async () => {
      const fx = fixture();
      const a = await endpoint(fx, 'a');
      const b = await endpoint(fx, 'b');
      const [x] = await emitMany(fx, 1);
      const claimed = await claim(fx, later(1_000));
      await fx.outboxStore.completeDeliveries([done(claimed.find((c) => c.endpoint.id === a.id)!, { status: 'delivered' })], later(1_000));
      expect(await fx.outboxStore.getEvent(x as string)).toMatchObject({ status: 'pending' });
      await fx.outboxStore.deleteWebhookEndpoint(b.id);
      expect(await fx.outboxStore.listDeliveries({ endpointId: b.id })).toEqual([]);
      expect(await fx.outboxStore.getEvent(x as string)).toMatchObject({ status: 'delivered' });
      expect(await fx.outboxStore.getWebhookEndpoint(b.id)).toBeUndefined();
    });

    it('keeps webhook endpoints: create with defaults, list oldest first, deactivate, delete', async () => {
      const fx = fixture();
      const a = await fx.outboxStore.createWebhookEndpoint({ url: 'http://127.0.0.1:9/a', secret: 's3cr3t' });
      expect(a).toMatchObject({ url: 'http://127.0.0.1:9/a', secret: 's3cr3t', eventTypes: [], isActive: true });
      expect(a.createdAt).toBeInstanceOf(Date);
      const b = await fx.outboxStore.createWebhookEndpoint({ url: 'http://127.0.0.1:9/b', secret: 'x', eventTypes: ['file.stored', 'file.expiring'], isActive: false });
      expect((await fx.outboxStore.listWebhookEndpoints()).map((e) => [e.url, e.eventTypes, e.isActive])).toEqual([
        ['http://127.0.0.1:9/a', [], true],
        ['http://127.0.0.1:9/b', ['file.stored', 'file.expiring'], false],
      ]);
      expect(await fx.outboxStore.setWebhookEndpointActive(b.id, true)).toMatchObject({ id: b.id, isActive: true });
      expect(await fx.outboxStore.getWebhookEndpoint(b.id)).toMatchObject({ id: b.id, isActive: true });
      expect(await fx.outboxStore.getWebhookEndpoint(randomUUID())).toBeUndefined();
      expect(await fx.outboxStore.setWebhookEndpointActive(randomUUID(), true)).toBeUndefined();
      await fx.outboxStore.deleteWebhookEndpoint(a.id);
      expect((await fx.outboxStore.listWebhookEndpoints()).map((e) => e.id)).toEqual([b.id]);
    });

    it('generates a whsec_ secret when none is given, and keeps a given one (whsec_ or raw) as given', async () => {
      const fx = fixture();
      const generated = await fx.outboxStore.createWebhookEndpoint({ url: 'http://127.0.0.1:9/generated' });
      const alsoGenerated = await fx.outboxStore.createWebhookEndpoint({ url: 'http://127.0.0.1:9/also', eventTypes: ['file.stored'] });
      for (const endpoint of [generated, alsoGenerated]) {
        expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/u);
        expect(Buffer.from(endpoint.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
      }
      expect(generated.secret).not.toBe(alsoGenerated.secret);
      const given = ['whsec_' + Buffer.alloc(24, 7).toString('base64'), 'whsec_' + Buffer.alloc(64, 9).toString('base64'), 'a raw secret from 0.2'];
      const kept = [];
      for (const secret of given) kept.push(await fx.outboxStore.createWebhookEndpoint({ url: 'http://127.0.0.1:9/given', secret }));
      expect(kept.map((e) => e.secret)).toEqual(given);
      // What is stored is what was returned.
      expect((await fx.outboxStore.listWebhookEndpoints()).map((e) => e.secret)).toEqual([generated.secret, alsoGenerated.secret, ...given]);
    });

    it('refuses a blank secret, a bad whsec_ one, or a bad URL, with the same typed error, echoing no value, and stores nothing', async () => {
      const fx = fixture();
      const refusals = [
        // Given as undefined (e.g. `secret: process.env.UNSET`) is a mistake, not "generate one".
        [{ url: 'http://127.0.0.1:9/a', secret: undefined }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: null }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: 42 }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: '' }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: '   ' }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: 'whsec_' }, 'secret'],
        // 23 and 65 bytes: outside the spec's 24–64.
        [{ url: 'http://127.0.0.1:9/a', secret: 'whsec_' + Buffer.alloc(23, 1).toString('base64') }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: 'whsec_' + Buffer.alloc(65, 1).toString('base64') }, 'secret'],
        // base64url and unpadded base64 are not what the receivers' libraries decode.
        [{ url: 'http://127.0.0.1:9/a', secret: 'whsec_' + Buffer.alloc(32, 0xfb).toString('base64url') }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: 'whsec_' + Buffer.alloc(32, 1).toString('base64').replace(/=+$/u, '') }, 'secret'],
        [{ url: 'http://127.0.0.1:9/a', secret: 'whsec_s3cr3t!!' }, 'secret'],
        [{ url: 'ftp://127.0.0.1/a', secret: 's3cr3t' }, 'url'],
        [{ url: 'not a url', secret: 's3cr3t' }, 'url'],
        [{ url: 'http://127.0.0.1:9/a', secret: 's3cr3t', eventTypes: 'file.stored' }, 'eventTypes'],
      ] as const;
      for (const [input, option] of refusals) {
        const error = await fx.outboxStore.createWebhookEndpoint(input as never).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, JSON.stringify(input)).toBeInstanceOf(StorageConfigError);
        expect(error).toMatchObject({ code: 'E_CONFIG', option });
        expect((error as Error).message).toContain(`"${option}"`);
        expect((error as Error).message).not.toContain('s3cr3t');
        const secret = (input as { secret?: unknown }).secret;
        if (typeof secret === 'string' && secret.length > 'whsec_'.length) expect((error as Error).message).not.toContain(secret.slice('whsec_'.length));
      }
      expect(await fx.outboxStore.listWebhookEndpoints()).toEqual([]);
    });

    it('wakes a subscriber when an event is committed, not when it is rolled back', async () => {
      const fx = fixture();
      if (fx.outboxStore.onEventCommitted === undefined) return;
      let calls = 0;
      let wake: () => void = () => undefined;
      const unsubscribe = await fx.outboxStore.onEventCommitted(() => {
        calls += 1;
        wake();
      });
      try {
        await fx.unitOfWork
          .transaction(async (tx) => {
            await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} })
            throw new Error('rolled back');
          })
          .catch(() => undefined);
        const woken = new Promise<void>((resolve) => {
          wake = resolve;
        });
        await fx.unitOfWork.transaction((tx) => tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} }));
        await woken;
        // A NOTIFY from the rolled-back transaction would have arrived first.
        expect(calls).toBe(1);
      } finally {
        await unsubscribe();
      }
      const before = calls;
      await emitMany(fx, 1);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(calls).toBe(before);
    });
  });
}
