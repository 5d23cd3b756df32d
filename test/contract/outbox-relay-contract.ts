/**
 * The relay's reliability proofs, run against every store (memory, SQLite, Postgres) with a
 * real HTTP receiver on 127.0.0.1: Standard Webhooks signatures (verified by the
 * `standardwebhooks` and `svix` packages too), rotation, endpoint matching, per-endpoint retries
 * on the schedule to a dead letter, Retry-After, 410 and long failure disabling an endpoint,
 * notices, redelivery, timeouts, crash mid-delivery, three concurrent relays over 500 events,
 * wake-ups, cleanup.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { OutboxEmitter, OutboxStore, UnitOfWork, UploadRepository } from '../../src/index.js';
import {
  DELIVERY_EXHAUSTED_EVENT,
  ENDPOINT_DISABLED_EVENT,
  OutboxRelay,
  generateWebhookSecret,
  isWebhookVerificationError,
  signWebhookBody,
  verifyWebhook,
  verifyWebhookSignature,
  type OutboxRelayOptions,
} from '../../src/outbox/index.js';
import { startVerifyingReceivers } from '../helpers/standard-receivers.js';
import { startReceiver, type ReceivedDelivery, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { fileOf } from './upload-store-contract.js';

export type RelayStore = OutboxStore & UnitOfWork & { outbox: OutboxEmitter; repository: UploadRepository };

export interface RelayFixture {
  /** At least three views of one outbox, each on its own connection where the store has them. */
  stores: RelayStore[];
  cleanup(): Promise<void>;
}

const SECRET = generateWebhookSecret();

/** Why verifyWebhook refuses a delivery, or 'ok'. */
function verdict(got: Pick<ReceivedDelivery, 'headers' | 'body'> | undefined, secrets: string | string[], body: Buffer | string = got?.body ?? '', now?: () => Date): string {
  try {
    verifyWebhook(body, got?.headers ?? {}, secrets, now === undefined ? {} : { now });
    return 'ok';
  } catch (error) {
    if (isWebhookVerificationError(error)) return error.code;
    throw error;
  }
}

/** A clock the test moves by hand. */
function manualClock(start = new Date()) {
  let t = start.getTime();
  return {
    now: () => new Date(t),
    set: (date: Date) => {
      t = date.getTime();
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

export function outboxRelayContract(name: string, makeFixture: () => Promise<RelayFixture>): void {
  describe(`Outbox relay: ${name}`, () => {
    let fx: RelayFixture;
    let store: RelayStore;
    let receiver: WebhookReceiver;
    const relays: OutboxRelay[] = [];

    const relay = (options: Partial<OutboxRelayOptions> = {}) => {
      // The receivers are on 127.0.0.1: the guard is off unless a test turns it on.
      const r = new OutboxRelay({ store, allowPrivateNetworks: true, onError: (error) => console.error(error), ...options });
      relays.push(r);
      return r;
    };
    /** The delivery of an event (to its only endpoint, or to `endpointId`). */
    const deliveryOf = async (eventId: string, endpointId?: string) => {
      const all = await store.listDeliveries({ eventId, ...(endpointId === undefined ? {} : { endpointId }) });
      expect(all).toHaveLength(1);
      return all[0]!;
    };
    const emit = async (payload: Record<string, unknown> = { n: 1 }, eventType = 'file.stored', on: RelayStore = store) =>
      (await on.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType, payload })).event;

    beforeEach(async () => {
      fx = await makeFixture();
      store = fx.stores[0] as RelayStore;
      receiver = await startReceiver();
    });
    afterEach(async () => {
      for (const r of relays.splice(0)) await r.stop();
      await receiver.close();
      await fx.cleanup();
    });

    it('POSTs the exact JSON payload with the Standard Webhooks headers, a signature that verifies (and fails when tampered)', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const payload = { file_id: randomUUID(), original_filename: 'naïve résumé.pdf', size_bytes: 12, nested: { a: [1, 2] } };
      const event = await emit(payload);
      const clock = manualClock(new Date(Date.now() + 1500));
      expect(await relay({ now: clock.now }).runOnce()).toEqual({ claimed: 1, delivered: 1, retried: 0, failed: 0, abandoned: 0 });

      expect(receiver.received).toHaveLength(1);
      const [got] = receiver.received;
      expect(got?.path).toBe('/hook');
      expect(got?.headers['content-type']).toBe('application/json');
      expect(got?.headers['user-agent']).toBe('doorito-storage-outbox-relay');
      expect(got?.headers['x-webhook-event']).toBe('file.stored');
      expect(got?.headers['webhook-id']).toBe(event.id);
      // Signed by the relay's clock, in whole seconds.
      expect(got?.headers['webhook-timestamp']).toBe(String(Math.floor(clock.now().getTime() / 1000)));
      expect(got?.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/u);
      // The deprecated headers only on request.
      expect(got?.headers['x-webhook-signature']).toBeUndefined();
      expect(got?.headers['x-webhook-delivery']).toBeUndefined();
      expect(JSON.parse(got!.body.toString('utf8'))).toEqual(payload);
      expect(verdict(got, SECRET)).toBe('ok');
      expect(verdict(got, SECRET, got!.body.toString('utf8'))).toBe('ok');
      expect(verifyWebhook(got!.body, got!.headers, SECRET)).toEqual({ id: event.id, timestamp: new Date(Math.floor(clock.now().getTime() / 1000) * 1000) });
      const tampered = Buffer.from(got!.body);
      tampered.writeUInt8(tampered.readUInt8(tampered.length - 2) ^ 1, tampered.length - 2);
      expect(verdict(got, SECRET, tampered)).toBe('E_WEBHOOK_SIGNATURE');
      expect(verdict(got, generateWebhookSecret())).toBe('E_WEBHOOK_SIGNATURE');
      expect(verdict(got, SECRET, got!.body, () => new Date(clock.now().getTime() + 301_000))).toBe('E_WEBHOOK_TIMESTAMP');
      expect(await store.getEvent(event.id)).toMatchObject({ status: 'delivered' });
      expect(await deliveryOf(event.id)).toMatchObject({ status: 'delivered', attempts: 1, lastStatus: 204 });
    });

    it('is verified by real standardwebhooks and svix receivers, with secrets the store generated; a capture replayed after the tolerance is refused by both', async () => {
      const verifiers = await startVerifyingReceivers();
      try {
        for (const verifier of verifiers) {
          // No secret given: the store makes one, and the endpoint it returns holds it.
          const endpoint = await store.createWebhookEndpoint({ url: `${verifier.url}/hook` });
          expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/u);
          expect((await store.listWebhookEndpoints()).find((e) => e.id === endpoint.id)?.secret).toBe(endpoint.secret);
          verifier.secret = endpoint.secret;
        }
        expect(verifiers[0]?.secret).not.toBe(verifiers[1]?.secret);
        const events = [await emit({ file_id: randomUUID(), original_filename: 'naïve résumé ✓.pdf' }), await emit({ n: 2 }, 'file.expiring')];
        // A delivery per endpoint and event.
        expect(await relay().runOnce()).toMatchObject({ claimed: 4, delivered: 4 });
        for (const verifier of verifiers) {
          expect(verifier.received.map((r) => [verifier.name, r.verified, r.error])).toEqual([
            [verifier.name, true, undefined],
            [verifier.name, true, undefined],
          ]);
          expect(new Set(verifier.received.map((r) => r.headers['webhook-id']))).toEqual(new Set(events.map((e) => e.id)));
        }

        // An attacker replays a captured delivery byte for byte.
        const replay = async (verifier: (typeof verifiers)[number], body?: Buffer) => {
          const captured = verifier.received[0]!;
          const headers = Object.fromEntries(['content-type', 'webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(captured.headers[h])]));
          const response = await fetch(`${verifier.url}/hook`, { method: 'POST', headers, body: body ?? captured.body });
          await response.body?.cancel();
          return [verifier.name, response.status, verifier.received.at(-1)?.error];
        };
        const signedAt = Number(verifiers[0]!.received[0]!.headers['webhook-timestamp']);
        // The receivers' clock (both packages read Date.now()) moves on; fetch and the server keep real timers.
        vi.useFakeTimers({ toFake: ['Date'], now: (signedAt + 300) * 1000 });
        // Within the tolerance a replay verifies: that is why receivers dedupe on webhook-id.
        expect(await Promise.all(verifiers.map((v) => replay(v)))).toEqual([
          ['standardwebhooks', 204, undefined],
          ['svix', 204, undefined],
        ]);
        const altered = Buffer.from(JSON.stringify({ file_id: randomUUID(), original_filename: 'evil.exe' }));
        expect(await Promise.all(verifiers.map((v) => replay(v, altered)))).toEqual([
          ['standardwebhooks', 401, 'No matching signature found'],
          ['svix', 401, 'No matching signature found'],
        ]);
        vi.setSystemTime((signedAt + 301) * 1000);
        expect(await Promise.all(verifiers.map((v) => replay(v)))).toEqual([
          ['standardwebhooks', 401, 'Message timestamp too old'],
          ['svix', 401, 'Message timestamp too old'],
        ]);
        const captured = verifiers[0]!.received[0]!;
        expect(() => verifyWebhook(captured.body, captured.headers, verifiers[0]!.secret)).toThrow(expect.objectContaining({ code: 'E_WEBHOOK_TIMESTAMP' }) as Error);
      } finally {
        vi.useRealTimers();
        await Promise.all(verifiers.map((v) => v.close()));
      }
    });

    it('adds the deprecated x-webhook-delivery and x-webhook-signature only with legacySignatureHeaders, keyed with a raw secret as before', async () => {
      const raw = 'legacy-raw-secret-from-0.2';
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: raw });
      const event = await emit({ n: 1 });
      expect(await relay({ legacySignatureHeaders: true }).runOnce()).toMatchObject({ delivered: 1 });
      const [got] = receiver.received;
      expect(got?.headers['x-webhook-delivery']).toBe(event.id);
      expect(got?.headers['x-webhook-signature']).toBe(signWebhookBody(got!.body, raw));
      expect(verifyWebhookSignature(got!.body, got?.headers['x-webhook-signature'] as string, raw)).toBe(true);
      // The Standard Webhooks headers are there too, keyed with the raw secret's bytes.
      expect(got?.headers['webhook-id']).toBe(event.id);
      expect(verdict(got, raw)).toBe('ok');
    });

    it('sends only to active endpoints whose event types match; with none, the event counts as delivered', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/all`, secret: SECRET });
      await store.createWebhookEndpoint({ url: `${receiver.url}/expiring`, secret: SECRET, eventTypes: ['file.expiring'] });
      await store.createWebhookEndpoint({ url: `${receiver.url}/off`, secret: SECRET, isActive: false });
      await emit({ n: 1 }, 'file.stored');
      await relay().runOnce();
      expect(receiver.received.map((d) => d.path)).toEqual(['/all']);

      for (const endpoint of await store.listWebhookEndpoints()) await store.deleteWebhookEndpoint(endpoint.id);
      const lonely = await emit({ n: 2 });
      expect((await relay().runOnce()).claimed).toBe(0);
      expect(receiver.received).toHaveLength(1);
      expect(await store.getEvent(lonely.id)).toMatchObject({ status: 'delivered' });
    });

    it('refuses a loopback destination with the guard on (the default), sending nothing, and delivers it with allowPrivateNetworks', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const event = await emit();
      expect(await relay({ allowPrivateNetworks: false }).runOnce()).toMatchObject({ claimed: 1, retried: 1 });
      expect(receiver.received).toEqual([]);
      expect((await deliveryOf(event.id)).lastError).toBe('destination refused: 127.0.0.1 is loopback (allowPrivateNetworks is off)');
      await store.redeliver((await deliveryOf(event.id)).id);
      expect(await relay({ allowPrivateNetworks: true }).runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      expect(receiver.received.map((d) => d.delivery)).toEqual([event.id]);
    });

    it('fails, without sending it, a pending delivery to an endpoint deactivated since', async () => {
      const endpoint = await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const event = await emit();
      await store.setWebhookEndpointActive(endpoint.id, false);
      expect(await relay().runOnce()).toMatchObject({ claimed: 1, failed: 1 });
      expect(receiver.received).toEqual([]);
      expect(await deliveryOf(event.id)).toMatchObject({ status: 'failed', lastError: 'endpoint inactive', attemptLog: [] });
      expect(await store.getEvent(event.id)).toMatchObject({ status: 'failed' });
    });

    it('retries a 500 on the default schedule (injected clock) to a dead letter, announced to the endpoints that ask for notices', async () => {
      receiver.answer = (d, res) => res.writeHead(d.path === '/notices' ? 204 : 500).end();
      const endpoint = await store.createWebhookEndpoint({ url: `${receiver.url}/hook?token=query-secret`, secret: SECRET });
      const watcher = await store.createWebhookEndpoint({ url: `${receiver.url}/notices`, secret: SECRET, eventTypes: [DELIVERY_EXHAUSTED_EVENT] });
      const event = await emit();
      const clock = manualClock(new Date(Date.now() + 1000));
      const r = relay({ now: clock.now, random: () => 0.5 });
      expect(r.maxAttempts).toBe(8);
      const waits: number[] = [];
      for (let attempt = 1; attempt <= 7; attempt += 1) {
        expect(await r.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
        const pending = await deliveryOf(event.id);
        expect(pending).toMatchObject({ status: 'pending', attempts: attempt, lastStatus: 500, lastError: 'HTTP 500' });
        waits.push((pending.nextAttemptAt.getTime() - clock.now().getTime()) / 1000);
        // Not due a millisecond early.
        clock.set(new Date(pending.nextAttemptAt.getTime() - 1));
        expect((await r.runOnce()).claimed).toBe(0);
        clock.advance(1);
      }
      // 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, plus 5 % (jitter 0.5 of the 10 % maximum).
      expect(waits).toEqual([5.25, 315, 1890, 7560, 18_900, 37_800, 37_800]);
      expect(await r.runOnce()).toMatchObject({ claimed: 1, failed: 1 });
      const failed = await deliveryOf(event.id);
      expect(failed).toMatchObject({ status: 'failed', attempts: 8, lastError: 'HTTP 500' });
      expect(failed.attemptLog.map((a) => a.status)).toEqual([500, 500, 500, 500, 500, 500, 500, 500]);
      expect(await store.getEvent(event.id)).toMatchObject({ status: 'failed', errorMessage: 'HTTP 500' });
      // The notice went out with the outcome; the next round delivers it to the watcher alone.
      expect(await r.runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      const notice = receiver.received.at(-1)!;
      expect(notice.path).toBe('/notices');
      expect(notice.headers['x-webhook-event']).toBe(DELIVERY_EXHAUSTED_EVENT);
      expect(verdict(notice, SECRET, notice.body, clock.now)).toBe('ok');
      expect(JSON.parse(notice.body.toString('utf8'))).toMatchObject({
        delivery_id: failed.id,
        event_id: event.id,
        event_type: 'file.stored',
        endpoint_id: endpoint.id,
        endpoint_url: `${receiver.url}/hook`,
        attempts: 8,
        last_status: 500,
        last_error: 'HTTP 500',
      });
      expect(JSON.stringify(await store.listDeliveries())).not.toContain('query-secret');
      expect(notice.body.toString('utf8')).not.toContain('query-secret');
      expect((await store.listDeliveries({ endpointId: watcher.id })).map((d) => d.status)).toEqual(['delivered']);
      clock.advance(86_400_000 * 3);
      expect((await r.runOnce()).claimed).toBe(0);
      expect(receiver.received.filter((d) => d.path === '/hook?token=query-secret')).toHaveLength(8);
      expect(new Set(receiver.received.filter((d) => d.path !== '/notices').map((d) => d.delivery))).toEqual(new Set([event.id]));

      // A dead letter redelivered: the same webhook-id, a fresh schedule.
      receiver.answer = 204;
      expect(await store.redeliver(failed.id, clock.now())).toMatchObject({ status: 'pending', attempts: 0 });
      expect(await r.runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      expect(receiver.received.at(-1)?.delivery).toBe(event.id);
      expect(await store.getEvent(event.id)).toMatchObject({ status: 'delivered' });
    });

    it('retries only the endpoint that failed: of three endpoints, one fails 3 times then recovers → 1, 1 and 4 POSTs', async () => {
      let failures = 0;
      receiver.answer = (d, res) => {
        if (d.path === '/flaky' && failures < 3) {
          failures += 1;
          res.writeHead(503).end();
        } else res.writeHead(204).end();
      };
      const [a, flaky, c] = [
        await store.createWebhookEndpoint({ url: `${receiver.url}/a`, secret: SECRET }),
        await store.createWebhookEndpoint({ url: `${receiver.url}/flaky`, secret: SECRET }),
        await store.createWebhookEndpoint({ url: `${receiver.url}/c`, secret: SECRET }),
      ];
      const event = await emit();
      const clock = manualClock(new Date(Date.now() + 1000));
      const r = relay({ now: clock.now, retryDelaysMs: [1000, 1000, 1000, 1000] });
      expect(await r.runOnce()).toMatchObject({ claimed: 3, delivered: 2, retried: 1 });
      expect(await store.getEvent(event.id)).toMatchObject({ status: 'pending' });
      for (let i = 0; i < 3; i += 1) {
        clock.advance(2_000);
        expect(await r.runOnce()).toMatchObject({ claimed: 1 });
      }
      const posts = (path: string) => receiver.received.filter((d) => d.path === path).length;
      expect([posts('/a'), posts('/flaky'), posts('/c')]).toEqual([1, 4, 1]);
      expect(await deliveryOf(event.id, flaky.id)).toMatchObject({ status: 'delivered', attempts: 4 });
      for (const e of [a, c]) expect(await deliveryOf(event.id, e.id)).toMatchObject({ status: 'delivered', attempts: 1 });
      expect(await store.getEvent(event.id)).toMatchObject({ status: 'delivered' });
      const healthy = await store.getWebhookEndpoint(flaky.id);
      expect(healthy?.failingSince).toBeUndefined();
      expect(healthy?.lastSuccessAt).toBeInstanceOf(Date);
      expect(new Set(receiver.received.map((d) => d.delivery))).toEqual(new Set([event.id]));
    });

    it('waits as long as a 429 or 503 Retry-After asks (delta-seconds or a date), within maxRetryAfterMs', async () => {
      const asks = ['2', '', 'in a while', '999999'];
      let answered = 0;
      receiver.answer = (_d, res) => {
        const ask = asks[answered];
        answered += 1;
        res.writeHead(answered === 2 ? 503 : 429, ask === '' ? { 'retry-after': new Date(clock.now().getTime() + 30_000).toUTCString() } : { 'retry-after': ask ?? '1' }).end();
      };
      await store.createWebhookEndpoint({ url: `${receiver.url}/busy`, secret: SECRET });
      const event = await emit();
      const clock = manualClock(new Date(Date.now() + 1000));
      const r = relay({ now: clock.now, retryDelaysMs: [100, 100, 100, 100, 100], retryJitter: 0, maxRetryAfterMs: 60_000 });
      const waitAfter = async () => {
        expect(await r.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
        const pending = await deliveryOf(event.id);
        const wait = pending.nextAttemptAt.getTime() - clock.now().getTime();
        clock.set(new Date(pending.nextAttemptAt.getTime() - 1));
        expect((await r.runOnce()).claimed).toBe(0);
        clock.advance(1);
        return wait;
      };
      // Retry-After: 2 → at least 2 s, though the schedule says 100 ms.
      expect(await waitAfter()).toBe(2_000);
      // An HTTP-date 30 s on (to the second, as the header has it).
      const dated = await waitAfter();
      expect(dated).toBeGreaterThan(29_000);
      expect(dated).toBeLessThanOrEqual(30_000);
      // Unreadable: the schedule's wait.
      expect(await waitAfter()).toBe(100);
      // 11 days: capped at maxRetryAfterMs.
      expect(await waitAfter()).toBe(60_000);
      expect((await deliveryOf(event.id)).attemptLog.map((a) => a.status)).toEqual([429, 503, 429, 429]);
    });

    it('disables an endpoint that answers 410 Gone: its pending deliveries become dead letters, a notice goes out, recoverEndpoint brings them back', async () => {
      receiver.answer = (d, res) => res.writeHead(d.path === '/gone' ? 410 : 204).end();
      const gone = await store.createWebhookEndpoint({ url: `${receiver.url}/gone`, secret: SECRET });
      await store.createWebhookEndpoint({ url: `${receiver.url}/notices`, secret: SECRET, eventTypes: [ENDPOINT_DISABLED_EVENT] });
      const first = await emit({ n: 1 });
      // Well ahead of real time: Postgres dates the notice by its own clock, at the end of a
      // round that takes over a second on a loaded machine.
      const clock = manualClock(new Date(Date.now() + 60_000));
      const reports: Array<{ outcome: string; disabled?: string }> = [];
      const r = relay({ now: clock.now, batchSize: 1, onDelivery: (report) => reports.push({ outcome: report.outcome, ...(report.disabledEndpoint === undefined ? {} : { disabled: report.disabledEndpoint.reason }) }) });
      const second = await emit({ n: 2 });
      expect(await r.runOnce()).toMatchObject({ claimed: 1, failed: 1 });
      expect(reports).toEqual([{ outcome: 'failed', disabled: 'HTTP 410 Gone' }]);
      expect(await store.getWebhookEndpoint(gone.id)).toMatchObject({ isActive: false, disabledReason: 'HTTP 410 Gone', disabledAt: clock.now() });
      expect(await deliveryOf(first.id, gone.id)).toMatchObject({ status: 'failed', lastStatus: 410 });
      // Not sent: failed by the disable.
      expect(await deliveryOf(second.id, gone.id)).toMatchObject({ status: 'failed', lastError: 'endpoint disabled: HTTP 410 Gone', attempts: 0 });
      // The notice is the only thing left to send.
      expect(await r.runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      expect(receiver.received.map((d) => d.path)).toEqual(['/gone', '/notices']);
      expect(JSON.parse(receiver.received[1]!.body.toString('utf8'))).toMatchObject({ endpoint_id: gone.id, endpoint_url: `${receiver.url}/gone`, reason: 'HTTP 410 Gone' });
      expect((await r.runOnce()).claimed).toBe(0);
      // New events skip it.
      const third = await emit({ n: 3 });
      expect(await store.listDeliveries({ eventId: third.id, endpointId: gone.id })).toEqual([]);

      receiver.answer = 204;
      const recovered = await store.recoverEndpoint(gone.id, { since: new Date(first.createdAt.getTime() - 1), now: clock.now() });
      expect(recovered).toMatchObject({ requeued: 2, endpoint: { isActive: true } });
      expect(await r.runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      expect(await r.runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      expect(receiver.received.slice(2).map((d) => [d.path, d.delivery])).toEqual([
        ['/gone', first.id],
        ['/gone', second.id],
      ]);
    });

    it('disables an endpoint failing without a success for disableAfterFailingMs', async () => {
      receiver.answer = 500;
      const down = await store.createWebhookEndpoint({ url: `${receiver.url}/down`, secret: SECRET });
      const clock = manualClock(new Date(Date.now() + 1000));
      const r = relay({ now: clock.now, retryDelaysMs: [3_600_000], disableAfterFailingMs: 86_400_000 });
      const started = clock.now();
      await emit({ n: 1 });
      expect(await r.runOnce()).toMatchObject({ retried: 1 });
      expect(await store.getWebhookEndpoint(down.id)).toMatchObject({ isActive: true, failingSince: started });
      clock.advance(86_400_000);
      await emit({ n: 2 });
      // Both due now: the first fails its second attempt, the second its first; a day has passed.
      const round = await r.runOnce();
      expect(round, JSON.stringify(await store.listDeliveries())).toMatchObject({ claimed: 2, failed: 2 });
      const disabled = await store.getWebhookEndpoint(down.id);
      expect(disabled).toMatchObject({ isActive: false, disabledReason: `failing without a success since ${started.toISOString()}` });
    });

    it('signs with both secrets during a rotation: receivers holding either verify, and the old one stops after the overlap', async () => {
      const verifiers = await startVerifyingReceivers();
      try {
        const endpoints = [];
        for (const verifier of verifiers) {
          const endpoint = await store.createWebhookEndpoint({ url: `${verifier.url}/hook` });
          verifier.secret = endpoint.secret;
          endpoints.push(endpoint);
        }
        // The receivers check timestamps against the real clock, so the overlap ends in 3 s of real time.
        const clock = manualClock(new Date(Date.now() + 1000));
        const rotated = await Promise.all(endpoints.map((e) => store.rotateWebhookSecret(e.id, { overlapHours: 1, now: new Date(clock.now().getTime() - 3_600_000 + 3_000) })));
        // standardwebhooks keeps the old secret, svix takes the new one.
        verifiers[1]!.secret = rotated[1]!.secret;
        const event = await emit({ n: 1 });
        const r = relay({ now: clock.now });
        expect(await r.runOnce()).toMatchObject({ claimed: 2, delivered: 2 });
        for (const verifier of verifiers) expect(verifier.received.map((d) => [verifier.name, d.verified])).toEqual([[verifier.name, true]]);
        const signed = verifiers[0]!.received[0]!;
        expect(String(signed.headers['webhook-signature']).split(' ')).toHaveLength(2);
        expect(verdict(signed, endpoints[0]!.secret, signed.body, clock.now)).toBe('ok');
        expect(verdict(signed, rotated[0]!.secret, signed.body, clock.now)).toBe('ok');

        // After the overlap only the new secret signs: the old one no longer verifies.
        clock.advance(3_001);
        await store.redeliverEvent(event.id, clock.now());
        expect(await r.runOnce()).toMatchObject({ claimed: 2 });
        expect(verifiers[0]!.received.at(-1)).toMatchObject({ verified: false });
        expect(verifiers[1]!.received.at(-1)).toMatchObject({ verified: true });
        const late = verifiers[0]!.received.at(-1)!;
        expect(String(late.headers['webhook-signature']).split(' ')).toHaveLength(1);
        expect(verdict(late, rotated[0]!.secret, late.body, clock.now)).toBe('ok');
      } finally {
        await Promise.all(verifiers.map((v) => v.close()));
      }
    });

    it('cuts off a receiver that never answers, and schedules a retry', async () => {
      receiver.answer = 'hang';
      await store.createWebhookEndpoint({ url: `${receiver.url}/slow`, secret: SECRET });
      const event = await emit();
      expect(await relay({ timeoutMs: 300, leaseMs: 5_000 }).runOnce()).toMatchObject({ claimed: 1, retried: 1 });
      const delivery = await deliveryOf(event.id);
      expect(delivery).toMatchObject({ status: 'pending', attempts: 1, lastError: 'timed out after 300 ms' });
      expect(delivery.lastStatus).toBeUndefined();
      expect(delivery.lastDurationMs).toBeGreaterThanOrEqual(250);
    });

    it('does not follow a redirect (it would turn the POST into a GET): a 3xx is retried', async () => {
      receiver.answer = (_d, res) => res.writeHead(302, { location: '/elsewhere' }).end();
      await store.createWebhookEndpoint({ url: `${receiver.url}/moved`, secret: SECRET });
      const event = await emit();
      expect(await relay().runOnce()).toMatchObject({ retried: 1 });
      expect(receiver.received.map((d) => d.path)).toEqual(['/moved']);
      expect((await deliveryOf(event.id)).lastError).toBe('HTTP 302');
    });

    it('redelivers after a crash between the POST and the recorded outcome, with the same webhook-id and a new timestamp', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const event = await emit();
      const kill = new AbortController();
      // The receiver got the POST; the relay dies before it hears back.
      receiver.answer = () => kill.abort(new Error('killed'));
      const clock = manualClock(new Date(Date.now() + 1000));
      const crashed = relay({ signal: kill.signal, now: clock.now, leaseMs: 60_000 });
      expect(await crashed.runOnce()).toMatchObject({ claimed: 1, delivered: 0, abandoned: 1 });
      expect(await deliveryOf(event.id)).toMatchObject({ status: 'pending', attempts: 1 });
      expect((await crashed.runOnce()).claimed).toBe(0);

      receiver.answer = 204;
      const survivor = relay({ now: clock.now });
      // Still leased to the dead relay.
      expect((await survivor.runOnce()).claimed).toBe(0);
      clock.advance(60_001);
      expect(await survivor.runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      expect(receiver.received.map((d) => d.delivery)).toEqual([event.id, event.id]);
      // Each attempt is signed when sent: the retry's timestamp is the survivor's clock, 60 s on.
      const [first, second] = receiver.received.map((d) => Number(d.headers['webhook-timestamp']));
      expect(second! - first!).toBeGreaterThanOrEqual(60);
      expect(receiver.received.map((d) => verdict(d, SECRET, d.body, () => new Date(Number(d.headers['webhook-timestamp']) * 1000)))).toEqual(['ok', 'ok']);
      // The receiver dedupes on the delivery id: one event, handled once.
      expect(new Set(receiver.received.map((d) => d.delivery)).size).toBe(1);
      expect(await store.getEvent(event.id)).toMatchObject({ status: 'delivered' });
      expect(await deliveryOf(event.id)).toMatchObject({ status: 'delivered', attempts: 2 });
    });

    it('delivers nothing for a rolled-back transaction, and once for a repeated idempotency key', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const file = fileOf();
      await store.repository.createFile(file);
      await expect(
        store.transaction(async (tx) => {
          await tx.repository.updateFile(file.id, { status: 'stored' }, { expectedStatus: 'uploading' });
          await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: file.id, eventType: 'file.stored', payload: { file_id: file.id } });
          throw new Error('after the update');
        }),
      ).rejects.toThrow('after the update');
      expect(await store.repository.getFile(file.id)).toMatchObject({ status: 'uploading' });
      expect((await relay().runOnce()).claimed).toBe(0);

      const key = { aggregateType: 'UploadFile', aggregateId: file.id, eventType: 'file.stored', idempotencyKey: `stored:${file.id}` };
      const first = await store.transaction((tx) => tx.outbox.emit({ ...key, payload: { try: 1 } }));
      const second = await store.transaction((tx) => tx.outbox.emit({ ...key, payload: { try: 2 } }));
      expect([first.duplicate, second.duplicate]).toEqual([false, true]);
      expect(await relay().runOnce()).toMatchObject({ claimed: 1, delivered: 1 });
      expect(receiver.received.map((d) => JSON.parse(d.body.toString('utf8')))).toEqual([{ try: 1 }]);
    });

    it('three relays over 500 events: every event delivered, none lost, none twice', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const ids = new Set<string>();
      for (let i = 0; i < 500; i += 1) ids.add((await emit({ i }, 'file.stored', fx.stores[i % 3])).id);
      const perRelay = await Promise.all(
        fx.stores.slice(0, 3).map(async (s) => {
          const r = relay({ store: s, batchSize: 20 });
          let delivered = 0;
          for (;;) {
            const result = await r.runOnce();
            expect(result.retried + result.failed + result.abandoned).toBe(0);
            if (result.claimed === 0) return delivered;
            delivered += result.delivered;
          }
        }),
      );
      const deliveries = receiver.received.map((d) => d.delivery);
      const unique = new Set(deliveries);
      console.log(
        `[${name}] 3 relays × 500 events: ${deliveries.length} POSTs received, ${unique.size} distinct deliveries, per relay ${perRelay.join(' + ')}`,
      );
      expect(perRelay.reduce((a, b) => a + b, 0)).toBe(500);
      expect(deliveries).toHaveLength(500);
      expect(unique).toEqual(ids);
      for (const got of receiver.received) expect(verdict(got, SECRET)).toBe('ok');
      const states = await Promise.all([...ids].map(async (id) => (await store.getEvent(id))?.status));
      expect(states.every((s) => s === 'delivered')).toBe(true);
    });

    it('start() with concurrency 2 keeps two rounds in flight, and still sends every delivery once', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      let inFlight = 0;
      let most = 0;
      receiver.answer = (_d, res) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        setTimeout(() => {
          inFlight -= 1;
          res.writeHead(204).end();
        }, 20);
      };
      const ids = new Set<string>();
      for (let i = 0; i < 60; i += 1) ids.add((await emit({ i })).id);
      const r = relay({ batchSize: 5, concurrency: 2, pollIntervalMs: 50 });
      r.start();
      await receiver.waitFor(60);
      await r.stop();
      expect(receiver.received).toHaveLength(60);
      expect(new Set(receiver.received.map((d) => d.delivery))).toEqual(ids);
      // More POSTs out at once than one round of 5 holds, never more than two rounds.
      expect(most).toBeGreaterThan(5);
      expect(most).toBeLessThanOrEqual(10);
      const states = await Promise.all([...ids].map(async (id) => (await store.getEvent(id))?.status));
      expect(states.every((state) => state === 'delivered')).toBe(true);
    });

    it('start() delivers a committed event without waiting for the poll, and stop() lets the round finish', async () => {
      if (store.onEventCommitted === undefined) return;
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const r = relay({ pollIntervalMs: 600_000 });
      r.start();
      expect(r.running).toBe(true);
      // Let the first (empty) round pass; from here only a wake-up can deliver within the test.
      await new Promise((resolve) => setTimeout(resolve, 300));
      receiver.answer = (_d, res) => setTimeout(() => res.writeHead(204).end(), 200);
      const event = await store.transaction((tx) =>
        tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: randomUUID(), eventType: 'file.stored', payload: {} }),
      );
      await receiver.waitFor(1);
      await r.stop();
      expect(r.running).toBe(false);
      // The round in flight recorded its outcome before stop() resolved.
      expect(await store.getEvent(event.event.id)).toMatchObject({ status: 'delivered' });
    });

    it('cleans up delivered events past the retention, keeping pending and failed ones', async () => {
      await store.createWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      const clock = manualClock(new Date(Date.now() + 1000));
      const delivered = await emit();
      const r = relay({ now: clock.now });
      await r.runOnce();
      const pending = await emit();
      clock.advance(100 * 3600_000);
      expect(await r.cleanupDeliveredEvents()).toBe(0);
      clock.advance(69 * 3600_000);
      expect(await r.cleanupDeliveredEvents()).toBe(1);
      expect(await store.getEvent(delivered.id)).toBeUndefined();
      expect(await store.getEvent(pending.id)).toMatchObject({ status: 'pending' });
      expect(await r.cleanupDeliveredEvents({ retentionHours: 0 })).toBe(0);
    });
  });
}
