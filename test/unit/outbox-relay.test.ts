import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MemoryUploadStore, isStorageConfigError } from '../../src/index.js';
import { OutboxRelay, retryDelayMs, signWebhookBody, verifyWebhookSignature } from '../../src/outbox/index.js';

describe('retryDelayMs', () => {
  it('doubles from 60 s up to one hour, from the attempts count', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelayMs(n, () => 0) / 1000)).toEqual([60, 120, 240, 480, 960, 1920, 3600, 3600]);
  });

  it('adds at most 10 % jitter', () => {
    expect(retryDelayMs(1, () => 0.999_999)).toBe(66_000);
    expect(retryDelayMs(9, () => 0.999_999)).toBe(3_960_000);
    const spread = new Set(Array.from({ length: 50 }, () => retryDelayMs(2)));
    expect(spread.size).toBeGreaterThan(1);
    for (const ms of spread) expect(ms >= 120_000 && ms <= 132_000).toBe(true);
  });
});

describe('verifyWebhookSignature', () => {
  const body = '{"file_id":"x","url":"https://cdn.example/a b"}';
  const secret = 'whsec-unit';
  const signature = signWebhookBody(body, secret);

  it('accepts the hex HMAC-SHA256 of the exact body, in either case', () => {
    expect(signature).toMatch(/^[0-9a-f]{64}$/u);
    expect(verifyWebhookSignature(body, signature, secret)).toBe(true);
    expect(verifyWebhookSignature(Buffer.from(body), signature.toUpperCase(), secret)).toBe(true);
  });

  it('rejects a changed body, another secret, and anything that is not a signature', () => {
    expect(verifyWebhookSignature(`${body} `, signature, secret)).toBe(false);
    expect(verifyWebhookSignature(body, signature, 'other')).toBe(false);
    for (const bad of [undefined, null, '', 'sha256=' + signature, signature.slice(0, 63), `${signature}00`, 'z'.repeat(64)]) {
      expect(verifyWebhookSignature(body, bad, secret)).toBe(false);
    }
  });
});

describe('OutboxRelay options', () => {
  const store = new MemoryUploadStore();

  it.each([
    [{ batchSize: 0 }, 'batchSize'],
    [{ pollIntervalMs: -1 }, 'pollIntervalMs'],
    [{ timeoutMs: 1.5 }, 'timeoutMs'],
    [{ timeoutMs: 30_000, leaseMs: 30_000 }, 'leaseMs'],
  ])('refuses %o naming the option', (options, option) => {
    try {
      new OutboxRelay({ store, ...options });
      expect.unreachable();
    } catch (error) {
      expect(isStorageConfigError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'E_CONFIG', option });
      expect((error as Error).message).toContain(option);
    }
  });

  it('refuses a negative retention', async () => {
    await expect(new OutboxRelay({ store }).cleanupDeliveredEvents({ retentionHours: -1 })).rejects.toMatchObject({ option: 'retentionHours' });
  });

  it('does nothing once its signal is aborted, and start() then stays stopped', async () => {
    await store.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'a', eventType: 'file.stored', payload: {} });
    const relay = new OutboxRelay({ store, signal: AbortSignal.abort() });
    expect((await relay.runOnce()).claimed).toBe(0);
    relay.start();
    expect(relay.running).toBe(false);
    expect((await store.claimEvents({ now: new Date(Date.now() + 1000), limit: 10, leaseUntil: new Date(Date.now() + 60_000) })).length).toBe(1);
  });

  it('reports a network error by its code', async () => {
    // A port that was just free: nothing listens there.
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    await store.createWebhookEndpoint({ url: `http://127.0.0.1:${port}/refused`, secret: 's' });
    const event = (await store.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'b', eventType: 'file.stored', payload: {} })).event;
    const reports: unknown[] = [];
    await new OutboxRelay({ store, onDelivery: (r) => reports.push(r) }).runOnce();
    expect((await store.getEvent(event.id))?.errorMessage).toBe(`http://127.0.0.1:${port}/refused: ECONNREFUSED`);
    expect(reports).toMatchObject([{ outcome: 'pending', endpoints: [{ ok: false, error: 'ECONNREFUSED' }] }]);
  });
});
