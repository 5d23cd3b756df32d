/**
 * Conformance suite of the OutboxStore port (what the relay needs): claims under a lease,
 * outcomes recorded only while the lease holds, cleanup, webhook endpoints, wake-ups.
 * Run by every upload store's contract test (memory, SQLite, Postgres).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { StorageConfigError, type OutboxEmitter, type OutboxStore, type UnitOfWork } from '../../src/index.js';

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

/** Call inside a describe whose beforeEach sets up a fresh, empty store. */
export function outboxStoreContract(fixture: () => OutboxStoreFixture): void {
  describe('outbox store (relay port)', () => {
    it('starts an emitted event pending, with no attempt, due now', async () => {
      const fx = fixture();
      const before = Date.now();
      const [id] = await emitMany(fx, 1);
      const event = await fx.outboxStore.getEvent(id as string);
      expect(event).toMatchObject({ id, status: 'pending', attempts: 0, maxAttempts: 5, payload: { i: 0 } });
      expect(event?.deliveredAt).toBeUndefined();
      expect(event?.errorMessage).toBeUndefined();
      expect(Math.abs((event?.nextAttemptAt.getTime() ?? 0) - before)).toBeLessThan(5_000);
      expect(await fx.outboxStore.getEvent(randomUUID())).toBeUndefined();
    });

    it('claims due events under a lease: counted as an attempt, not claimable again until the lease ends', async () => {
      const fx = fixture();
      const ids = await emitMany(fx, 3);
      const now = later(1_000);
      const leaseUntil = later(60_000, now);
      const first = await fx.outboxStore.claimEvents({ now, limit: 2, leaseUntil });
      expect(first).toHaveLength(2);
      for (const event of first) {
        expect(event).toMatchObject({ status: 'pending', attempts: 1, nextAttemptAt: leaseUntil });
        expect(ids).toContain(event.id);
      }
      const second = await fx.outboxStore.claimEvents({ now, limit: 10, leaseUntil });
      expect(second.map((e) => e.id)).toEqual(ids.filter((id) => !first.some((e) => e.id === id)));
      expect(await fx.outboxStore.claimEvents({ now, limit: 10, leaseUntil })).toEqual([]);
      // After the lease, an unfinished claim (a relay that died) is claimable again.
      const again = await fx.outboxStore.claimEvents({ now: later(1, leaseUntil), limit: 10, leaseUntil: later(120_000, now) });
      expect(again.map((e) => e.id).sort()).toEqual([...ids].sort());
      expect(again.every((e) => e.attempts === 2)).toBe(true);
    });

    it('makes an event due from the instant it was created, as the store reports it (milliseconds)', async () => {
      const fx = fixture();
      for (let i = 0; i < 5; i += 1) {
        const { event } = await fx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: { i } });
        // A relay whose clock reads the creation instant, to the millisecond, takes it.
        const claimed = await fx.outboxStore.claimEvents({ now: event.createdAt, limit: 10, leaseUntil: later(60_000, event.createdAt) });
        expect(claimed.map((e) => e.id)).toEqual([event.id]);
      }
    });

    it('does not claim an event before it is due', async () => {
      const fx = fixture();
      await emitMany(fx, 1);
      expect(await fx.outboxStore.claimEvents({ now: later(-60_000), limit: 10, leaseUntil: later(60_000) })).toEqual([]);
    });

    it('records delivered, retry and failed outcomes only while the lease holds', async () => {
      const fx = fixture();
      const [a, b, c] = await emitMany(fx, 3);
      const now = later(1_000);
      const claimed = await fx.outboxStore.claimEvents({ now, limit: 10, leaseUntil: later(60_000, now) });
      const byId = new Map(claimed.map((e) => [e.id, e]));
      const done = later(2_000, now);

      expect(await fx.outboxStore.completeEvent(byId.get(a as string)!, { status: 'delivered' }, done)).toBe(true);
      expect(await fx.outboxStore.getEvent(a as string)).toMatchObject({ status: 'delivered', deliveredAt: done, attempts: 1 });
      // Recorded once: the same claim cannot record again.
      expect(await fx.outboxStore.completeEvent(byId.get(a as string)!, { status: 'failed', errorMessage: 'late' }, done)).toBe(false);
      expect(await fx.outboxStore.getEvent(a as string)).toMatchObject({ status: 'delivered' });

      expect(await fx.outboxStore.completeEvent(byId.get(c as string)!, { status: 'failed', errorMessage: 'HTTP 410' }, done)).toBe(true);
      expect(await fx.outboxStore.getEvent(c as string)).toMatchObject({ status: 'failed', errorMessage: 'HTTP 410' });

      const retryAt = later(120_000, now);
      expect(await fx.outboxStore.completeEvent(byId.get(b as string)!, { status: 'pending', nextAttemptAt: retryAt, errorMessage: 'HTTP 500' }, done)).toBe(true);
      expect(await fx.outboxStore.getEvent(b as string)).toMatchObject({ status: 'pending', nextAttemptAt: retryAt, errorMessage: 'HTTP 500', attempts: 1 });
      expect(await fx.outboxStore.claimEvents({ now: later(-1, retryAt), limit: 10, leaseUntil: later(1, retryAt) })).toEqual([]);
      const retried = await fx.outboxStore.claimEvents({ now: retryAt, limit: 10, leaseUntil: later(60_000, retryAt) });
      expect(retried.map((e) => [e.id, e.attempts])).toEqual([[b, 2]]);

    });

    it('records a whole round at once, each outcome only where its lease holds', async () => {
      const fx = fixture();
      const [a, b, c] = await emitMany(fx, 3);
      const now = later(1_000);
      const claimed = await fx.outboxStore.claimEvents({ now, limit: 3, leaseUntil: later(60_000, now) });
      const lease = (id: string | undefined) => claimed.find((e) => e.id === id)!;
      const retryAt = later(120_000, now);
      const stale = { id: c as string, nextAttemptAt: later(1, lease(c).nextAttemptAt) };
      const done = later(2_000, now);
      const recorded = await fx.outboxStore.completeEvents(
        [
          { claimed: lease(a), outcome: { status: 'delivered' } },
          { claimed: lease(b), outcome: { status: 'pending', nextAttemptAt: retryAt, errorMessage: 'HTTP 503' } },
          { claimed: stale, outcome: { status: 'failed', errorMessage: 'not mine' } },
          { claimed: { id: 'not-an-event', nextAttemptAt: now }, outcome: { status: 'delivered' } },
        ],
        done,
      );
      expect(recorded).toEqual([true, true, false, false]);
      expect(await fx.outboxStore.getEvent(a as string)).toMatchObject({ status: 'delivered', deliveredAt: done });
      expect(await fx.outboxStore.getEvent(b as string)).toMatchObject({ status: 'pending', nextAttemptAt: retryAt, errorMessage: 'HTTP 503' });
      expect(await fx.outboxStore.getEvent(c as string)).toMatchObject({ status: 'pending', attempts: 1 });
      expect(await fx.outboxStore.completeEvents([], done)).toEqual([]);
    });

    it('refuses the outcome of a claim whose lease another relay took over', async () => {
      const fx = fixture();
      const [id] = await emitMany(fx, 1);
      const now = later(1_000);
      const [stale] = await fx.outboxStore.claimEvents({ now, limit: 1, leaseUntil: later(10_000, now) });
      const [fresh] = await fx.outboxStore.claimEvents({ now: later(20_000, now), limit: 1, leaseUntil: later(80_000, now) });
      expect(fresh?.id).toBe(id);
      expect(await fx.outboxStore.completeEvent(stale!, { status: 'delivered' }, later(30_000, now))).toBe(false);
      expect(await fx.outboxStore.getEvent(id as string)).toMatchObject({ status: 'pending', attempts: 2 });
      expect(await fx.outboxStore.completeEvent(fresh!, { status: 'delivered' }, later(30_000, now))).toBe(true);
    });

    it('marks failed an event whose last allowed attempt never reported back', async () => {
      const fx = fixture();
      const [id] = await emitMany(fx, 1);
      let now = later(1_000);
      for (let attempt = 1; attempt <= 5; attempt += 1) {
        const claimed = await fx.outboxStore.claimEvents({ now, limit: 1, leaseUntil: later(1_000, now) });
        expect(claimed.map((e) => e.attempts)).toEqual([attempt]);
        now = later(2_000, now);
      }
      expect(await fx.outboxStore.claimEvents({ now, limit: 1, leaseUntil: later(1_000, now) })).toEqual([]);
      const event = await fx.outboxStore.getEvent(id as string);
      expect(event).toMatchObject({ status: 'failed', attempts: 5 });
      expect(event?.errorMessage).toMatch(/lease/u);
    });

    it('never hands the same event to two concurrent claims', async () => {
      const fx = fixture();
      const ids = await emitMany(fx, 30);
      const now = later(1_000);
      const claims = await Promise.all(Array.from({ length: 5 }, () => fx.outboxStore.claimEvents({ now, limit: 10, leaseUntil: later(60_000, now) })));
      const claimed = claims.flat().map((e) => e.id);
      expect(new Set(claimed).size).toBe(claimed.length);
      expect([...claimed].sort()).toEqual([...ids].sort());
    });

    it('deletes delivered events older than the cut-off, and only those', async () => {
      const fx = fixture();
      const [oldOne, recent, pending] = await emitMany(fx, 3);
      const now = later(1_000);
      const claimed = await fx.outboxStore.claimEvents({ now, limit: 3, leaseUntil: later(60_000, now) });
      const lease = (id: string | undefined) => claimed.find((e) => e.id === id)!;
      await fx.outboxStore.completeEvent(lease(oldOne), { status: 'delivered' }, later(-10 * 3600_000, now));
      await fx.outboxStore.completeEvent(lease(recent), { status: 'delivered' }, now);
      expect(await fx.outboxStore.deleteDeliveredEvents(later(-3600_000, now))).toBe(1);
      expect(await fx.outboxStore.getEvent(oldOne as string)).toBeUndefined();
      expect(await fx.outboxStore.getEvent(recent as string)).toMatchObject({ status: 'delivered' });
      expect(await fx.outboxStore.getEvent(pending as string)).toMatchObject({ status: 'pending' });
      expect(await fx.outboxStore.deleteDeliveredEvents(later(-3600_000, now))).toBe(0);
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
