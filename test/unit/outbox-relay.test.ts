import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryUploadStore, isStorageConfigError, isWebhookDestinationError } from '../../src/index.js';
import {
  DEFAULT_RETRY_DELAYS_MS,
  OutboxRelay,
  WebhookSecretBox,
  isSealedSecret,
  parseRetryAfter,
  retryDelayMs,
  signingSecrets,
  signWebhookBody,
  verifyWebhookSignature,
} from '../../src/outbox/index.js';

describe('retryDelayMs', () => {
  it('follows the default schedule, about a day in all, the last wait repeating past its end', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelayMs(n, () => 0) / 1000)).toEqual([5, 300, 1800, 7200, 18_000, 36_000, 36_000, 36_000]);
    expect(DEFAULT_RETRY_DELAYS_MS.reduce((a, b) => a + b, 0) / 3_600_000).toBeCloseTo(27.58, 1);
  });

  it('adds at most 10 % jitter, or what it is given', () => {
    expect(retryDelayMs(1, () => 0.999_999)).toBe(5_500);
    expect(retryDelayMs(2, () => 0.5, [1000, 2000], 0.5)).toBe(2_500);
    const spread = new Set(Array.from({ length: 50 }, () => retryDelayMs(2)));
    expect(spread.size).toBeGreaterThan(1);
    for (const ms of spread) expect(ms >= 300_000 && ms <= 330_000).toBe(true);
  });
});

describe('parseRetryAfter', () => {
  const now = new Date('2026-12-02T12:00:00Z');
  it('reads delta-seconds and HTTP-dates, and nothing else', () => {
    expect(parseRetryAfter('2', now)).toBe(2_000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 11:00:00 GMT', now)).toBe(0);
    for (const bad of [null, undefined, '', '-1', '1.5', 'soon']) expect(parseRetryAfter(bad, now)).toBeUndefined();
  });
});

describe('signingSecrets', () => {
  const now = new Date('2026-12-02T12:00:00Z');
  it('adds the previous secret only while the overlap lasts', () => {
    expect(signingSecrets({ secret: 'new' }, now)).toEqual(['new']);
    expect(signingSecrets({ secret: 'new', previousSecret: 'old', previousSecretExpiresAt: new Date(now.getTime() + 1) }, now)).toEqual(['new', 'old']);
    expect(signingSecrets({ secret: 'new', previousSecret: 'old', previousSecretExpiresAt: now }, now)).toEqual(['new']);
  });
});

describe('WebhookSecretBox', () => {
  const key = randomBytes(32);
  it('seals with AES-256-GCM bound to the endpoint id, and opens what it sealed', () => {
    const box = new WebhookSecretBox(key.toString('base64'));
    expect(box.encrypts).toBe(true);
    const sealed = box.seal('whsec_abc', 'endpoint-1');
    expect(isSealedSecret(sealed)).toBe(true);
    expect(sealed).not.toContain('abc');
    expect(box.seal('whsec_abc', 'endpoint-1')).not.toBe(sealed);
    expect(box.open(sealed, 'endpoint-1')).toBe('whsec_abc');
    expect(new WebhookSecretBox(key.toString('hex')).open(sealed, 'endpoint-1')).toBe('whsec_abc');
    expect(new WebhookSecretBox(key).open(sealed, 'endpoint-1')).toBe('whsec_abc');
    // Stored before a key was configured: read as is.
    expect(box.open('whsec_plain', 'endpoint-1')).toBe('whsec_plain');
  });

  it('refuses another endpoint id, another key, an altered value, or no key, naming the option and never the secret', () => {
    const box = new WebhookSecretBox(key);
    const sealed = box.seal('whsec_topsecret', 'endpoint-1');
    const altered = sealed.slice(0, -4) + (sealed.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    for (const [opener, value, id] of [
      [box, sealed, 'endpoint-2'],
      [new WebhookSecretBox(randomBytes(32)), sealed, 'endpoint-1'],
      [box, altered, 'endpoint-1'],
      [new WebhookSecretBox(), sealed, 'endpoint-1'],
    ] as const) {
      const error = (() => {
        try {
          opener.open(value, id);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(isStorageConfigError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'E_CONFIG', option: 'secretsKey' });
      expect((error as Error).message).toContain('WEBHOOK_SECRETS_KEY');
      expect((error as Error).message).not.toContain('topsecret');
    }
  });

  it('refuses a key that is not 32 bytes', () => {
    for (const bad of ['', 'short', randomBytes(16).toString('base64'), randomBytes(32).toString('base64url').replace(/[A-Za-z0-9]$/u, '-'), randomBytes(31)]) {
      expect(() => new WebhookSecretBox(bad)).toThrow(expect.objectContaining({ code: 'E_CONFIG', option: 'secretsKey' }) as Error);
    }
    expect(new WebhookSecretBox().encrypts).toBe(false);
    expect(new WebhookSecretBox().seal('x', 'e')).toBe('x');
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
  const store = new MemoryUploadStore({ allowPrivateNetworks: true });

  it.each([
    [{ batchSize: 0 }, 'batchSize'],
    [{ pollIntervalMs: -1 }, 'pollIntervalMs'],
    [{ timeoutMs: 1.5 }, 'timeoutMs'],
    [{ timeoutMs: 30_000, leaseMs: 30_000 }, 'leaseMs'],
    [{ retryDelaysMs: [1000, -1] }, 'retryDelaysMs'],
    [{ retryDelaysMs: [1.5] }, 'retryDelaysMs'],
    [{ retryJitter: 2 }, 'retryJitter'],
    [{ concurrency: 0 }, 'concurrency'],
    [{ maxRetryAfterMs: 0 }, 'maxRetryAfterMs'],
    [{ disableAfterFailingMs: Number.NaN }, 'disableAfterFailingMs'],
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

  it('refuses, by default, to register an endpoint on a non-public destination, storing nothing', async () => {
    const guarded = new MemoryUploadStore();
    for (const url of ['http://127.0.0.1:3000/hook?token=t0ps3cret', 'http://localhost/hook', 'http://[::1]/hook', 'http://10.1.2.3/hook', 'http://169.254.169.254/latest']) {
      const error = await guarded.createWebhookEndpoint({ url }).catch((e: unknown) => e);
      expect(isWebhookDestinationError(error), url).toBe(true);
      expect(error).toMatchObject({ code: 'E_WEBHOOK_DESTINATION' });
      expect((error as Error).message).toContain('allowPrivateNetworks');
      expect((error as Error).message).not.toContain('t0ps3cret');
    }
    expect(await guarded.listWebhookEndpoints()).toEqual([]);
    // A public literal is fine (nothing is sent at registration).
    expect(await guarded.createWebhookEndpoint({ url: 'https://93.184.215.14/hook' })).toMatchObject({ url: 'https://93.184.215.14/hook' });
  });

  it('refuses a negative retention', async () => {
    await expect(new OutboxRelay({ store }).cleanupDeliveredEvents({ retentionHours: -1 })).rejects.toMatchObject({ option: 'retentionHours' });
  });

  it('does nothing once its signal is aborted, and start() then stays stopped', async () => {
    await store.createWebhookEndpoint({ url: 'http://127.0.0.1:9/never', secret: 's' });
    await store.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'a', eventType: 'file.stored', payload: {} });
    const relay = new OutboxRelay({ store, signal: AbortSignal.abort() });
    expect((await relay.runOnce()).claimed).toBe(0);
    relay.start();
    expect(relay.running).toBe(false);
    expect((await store.claimDeliveries({ now: new Date(Date.now() + 1000), limit: 10, leaseUntil: new Date(Date.now() + 60_000) })).length).toBe(1);
  });

  it('reports a network error by its code', async () => {
    // A port that was just free: nothing listens there.
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const local = new MemoryUploadStore({ allowPrivateNetworks: true });
    await local.createWebhookEndpoint({ url: `http://127.0.0.1:${port}/refused`, secret: 's' });
    const event = (await local.outbox.emit({ aggregateType: 'UploadFile', aggregateId: 'b', eventType: 'file.stored', payload: {} })).event;
    const reports: unknown[] = [];
    await new OutboxRelay({ store: local, allowPrivateNetworks: true, onDelivery: (r) => reports.push(r) }).runOnce();
    expect((await local.listDeliveries({ eventId: event.id }))[0]).toMatchObject({ status: 'pending', lastError: 'ECONNREFUSED' });
    expect(reports).toMatchObject([{ outcome: 'pending', result: { ok: false, error: 'ECONNREFUSED', url: `http://127.0.0.1:${port}/refused` } }]);
  });
});
