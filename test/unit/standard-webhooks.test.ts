/**
 * Standard Webhooks signatures: known vectors (by the spec's formula, and the third-party
 * packages' own signer), the tolerance both ways, several signatures and secrets, raw secrets,
 * malformed headers, and the secret format.
 */
import { createHmac } from 'node:crypto';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { describe, expect, it } from 'vitest';
import { StorageConfigError, StorageError, isStorageError } from '../../src/index.js';
import {
  WebhookVerificationError,
  generateWebhookSecret,
  isWebhookVerificationError,
  signWebhook,
  verifyWebhook,
  type WebhookHeaders,
} from '../../src/outbox/index.js';
import { webhookSecretKey } from '../../src/upload/webhook-secret.js';

// The vector of Svix's and standardwebhooks' own test suites; the signature was also computed
// apart, with `openssl dgst -sha256 -mac HMAC` over "<id>.<timestamp>.<body>".
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
// A raw (pre-whsec_) secret: the key is its UTF-8 bytes. Also computed with openssl.
const RAW = {
  secret: 'legacy-raw-secret',
  id: 'evt_0193a0c2',
  timestamp: 1767225600,
  body: '{"file_id":"x","size_bytes":12}',
  signature: 'v1,C2SBtw2/nsf+NIz7LuQlslswVCi1pn+EYUsn0mnCD20=',
};

const at = (seconds: number) => () => new Date(seconds * 1000);
const headersOf = (v: { id: string; timestamp: number; signature: string }) => ({
  'webhook-id': v.id,
  'webhook-timestamp': String(v.timestamp),
  'webhook-signature': v.signature,
});

function refusal(run: () => unknown): WebhookVerificationError {
  try {
    run();
  } catch (error) {
    expect(isWebhookVerificationError(error)).toBe(true);
    return error as WebhookVerificationError;
  }
  throw new Error('verifyWebhook accepted it');
}

describe('signWebhook', () => {
  it('signs "<id>.<timestamp>.<body>" with the decoded whsec_ key: the known vector, and what both packages sign', () => {
    expect(signWebhook(VECTOR.id, VECTOR.timestamp, VECTOR.body, VECTOR.secret)).toBe(VECTOR.signature);
    const key = Buffer.from(VECTOR.secret.slice('whsec_'.length), 'base64');
    const byHand = createHmac('sha256', key).update(`${VECTOR.id}.${VECTOR.timestamp}.${VECTOR.body}`).digest('base64');
    expect(VECTOR.signature).toBe(`v1,${byHand}`);
    const date = new Date(VECTOR.timestamp * 1000);
    expect(new StandardWebhook(VECTOR.secret).sign(VECTOR.id, date, VECTOR.body)).toBe(VECTOR.signature);
    expect(new SvixWebhook(VECTOR.secret).sign(VECTOR.id, date, VECTOR.body)).toBe(VECTOR.signature);
  });

  it('keys a raw secret with its UTF-8 bytes, as standardwebhooks does with format "raw"', () => {
    expect(signWebhook(RAW.id, RAW.timestamp, RAW.body, RAW.secret)).toBe(RAW.signature);
    const raw = new StandardWebhook(new TextEncoder().encode(RAW.secret), { format: 'raw' });
    expect(raw.sign(RAW.id, new Date(RAW.timestamp * 1000), RAW.body)).toBe(RAW.signature);
    expect(webhookSecretKey('pässwörd-✓')).toEqual(Buffer.from('pässwörd-✓', 'utf8'));
  });

  it('signs bytes and the same string alike, and gives one signature per secret', () => {
    const bytes = Buffer.from(VECTOR.body, 'utf8');
    expect(signWebhook(VECTOR.id, VECTOR.timestamp, bytes, VECTOR.secret)).toBe(VECTOR.signature);
    expect(signWebhook(VECTOR.id, VECTOR.timestamp, VECTOR.body, [VECTOR.secret, RAW.secret]).split(' ')).toEqual([
      VECTOR.signature,
      signWebhook(VECTOR.id, VECTOR.timestamp, VECTOR.body, RAW.secret),
    ]);
  });
});

describe('verifyWebhook', () => {
  const now = at(VECTOR.timestamp);

  it('accepts the vector, from a plain object in any case or a Headers, and returns the id and timestamp', () => {
    const verified = { id: VECTOR.id, timestamp: new Date(VECTOR.timestamp * 1000) };
    expect(verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret, { now })).toEqual(verified);
    const upper = { 'Webhook-Id': VECTOR.id, 'WEBHOOK-TIMESTAMP': String(VECTOR.timestamp), 'Webhook-Signature': VECTOR.signature };
    expect(verifyWebhook(Buffer.from(VECTOR.body), upper, VECTOR.secret, { now })).toEqual(verified);
    expect(verifyWebhook(VECTOR.body, new Headers(headersOf(VECTOR)), [VECTOR.secret], { now })).toEqual(verified);
    expect(verifyWebhook(RAW.body, headersOf(RAW), RAW.secret, { now: at(RAW.timestamp) }).id).toBe(RAW.id);
  });

  it('verifies what standardwebhooks signs now with a fresh secret, and the packages verify what we sign', () => {
    const secret = generateWebhookSecret();
    const id = 'evt_interop';
    const timestamp = Math.floor(Date.now() / 1000);
    const body = '{"naïve":"résumé ✓"}';
    const theirs = new StandardWebhook(secret).sign(id, new Date(timestamp * 1000), body);
    expect(verifyWebhook(body, { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': theirs }, secret).id).toBe(id);
    const ours = { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signWebhook(id, timestamp, body, secret) };
    expect(new StandardWebhook(secret).verify(body, ours)).toEqual({ naïve: 'résumé ✓' });
    expect(new SvixWebhook(secret).verify(body, ours)).toEqual({ naïve: 'résumé ✓' });
  });

  it('takes a timestamp up to the tolerance away, either way, and refuses one a second further (E_WEBHOOK_TIMESTAMP)', () => {
    for (const skew of [-300, -1, 0, 1, 300]) {
      expect(verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret, { now: at(VECTOR.timestamp + skew) }).id).toBe(VECTOR.id);
    }
    const old = refusal(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret, { now: at(VECTOR.timestamp + 301) }));
    expect(old).toMatchObject({ code: 'E_WEBHOOK_TIMESTAMP', name: 'WebhookVerificationError' });
    expect(old.message).toContain('301 s old');
    const future = refusal(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret, { now: at(VECTOR.timestamp - 301) }));
    expect(future).toMatchObject({ code: 'E_WEBHOOK_TIMESTAMP' });
    expect(future.message).toContain('in the future');
    expect(verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret, { now: at(VECTOR.timestamp + 3600), toleranceSeconds: 3600 }).id).toBe(VECTOR.id);
    expect(refusal(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret, { now: at(VECTOR.timestamp + 1), toleranceSeconds: 0 })).code).toBe(
      'E_WEBHOOK_TIMESTAMP',
    );
    // Milliseconds read as seconds are 50,000 years ahead.
    expect(refusal(() => verifyWebhook(VECTOR.body, { ...headersOf(VECTOR), 'webhook-timestamp': `${VECTOR.timestamp}000` }, VECTOR.secret, { now })).code).toBe('E_WEBHOOK_TIMESTAMP');
    // The real clock by default: the 2021 vector is long stale.
    expect(refusal(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret)).code).toBe('E_WEBHOOK_TIMESTAMP');
  });

  it('checks the timestamp is signed: moving it into the tolerance breaks the signature', () => {
    const moved = { ...headersOf(VECTOR), 'webhook-timestamp': String(VECTOR.timestamp + 10) };
    expect(refusal(() => verifyWebhook(VECTOR.body, moved, VECTOR.secret, { now })).code).toBe('E_WEBHOOK_SIGNATURE');
    const otherId = { ...headersOf(VECTOR), 'webhook-id': 'msg_other' };
    expect(refusal(() => verifyWebhook(VECTOR.body, otherId, VECTOR.secret, { now })).code).toBe('E_WEBHOOK_SIGNATURE');
  });

  it('refuses a changed body, another secret, and a signature of another message (E_WEBHOOK_SIGNATURE), naming no secret', () => {
    const error = refusal(() => verifyWebhook(`${VECTOR.body} `, headersOf(VECTOR), VECTOR.secret, { now }));
    expect(error).toMatchObject({ code: 'E_WEBHOOK_SIGNATURE' });
    expect(error).toBeInstanceOf(StorageError);
    expect(isStorageError(error)).toBe(true);
    expect(error.message).not.toContain(VECTOR.secret.slice(6));
    expect(error.message).not.toContain(VECTOR.signature.slice(3));
    expect(refusal(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), generateWebhookSecret(), { now })).code).toBe('E_WEBHOOK_SIGNATURE');
    // The raw reading of a whsec_ string is another key.
    expect(refusal(() => verifyWebhook(VECTOR.body, { ...headersOf(VECTOR), 'webhook-signature': signWebhook(VECTOR.id, VECTOR.timestamp, VECTOR.body, VECTOR.secret.slice(6)) }, VECTOR.secret, { now })).code).toBe(
      'E_WEBHOOK_SIGNATURE',
    );
  });

  it('accepts any one of several space-separated signatures, skipping other versions and junk', () => {
    const wrong = signWebhook(VECTOR.id, VECTOR.timestamp, VECTOR.body, generateWebhookSecret());
    const header = `v1a,${'A'.repeat(86)}== v1,not*base64 v2,${VECTOR.signature.slice(3)} ${wrong} ${VECTOR.signature}`;
    const headers = { ...headersOf(VECTOR), 'webhook-signature': header };
    expect(verifyWebhook(VECTOR.body, headers, VECTOR.secret, { now }).id).toBe(VECTOR.id);
    // The packages read the header the same way.
    const clock = VECTOR.timestamp * 1000;
    const original = Date.now;
    Date.now = () => clock;
    try {
      expect(new StandardWebhook(VECTOR.secret).verify(VECTOR.body, headers)).toEqual({ test: 2432232314 });
      expect(new SvixWebhook(VECTOR.secret).verify(VECTOR.body, headers)).toEqual({ test: 2432232314 });
    } finally {
      Date.now = original;
    }
    expect(refusal(() => verifyWebhook(VECTOR.body, { ...headers, 'webhook-signature': `${wrong} v2,${VECTOR.signature.slice(3)}` }, VECTOR.secret, { now })).code).toBe(
      'E_WEBHOOK_SIGNATURE',
    );
  });

  it('accepts a signature matching any of several secrets (old and new during a change), raw or whsec_', () => {
    const others = [generateWebhookSecret(), 'some-raw-secret'];
    expect(verifyWebhook(VECTOR.body, headersOf(VECTOR), [...others, VECTOR.secret], { now }).id).toBe(VECTOR.id);
    expect(verifyWebhook(RAW.body, headersOf(RAW), [VECTOR.secret, RAW.secret], { now: at(RAW.timestamp) }).id).toBe(RAW.id);
    expect(refusal(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), others, { now })).code).toBe('E_WEBHOOK_SIGNATURE');
  });

  it.each<[string, WebhookHeaders]>([
    ['no headers', {}],
    ['no webhook-id', { 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': VECTOR.signature }],
    ['a blank webhook-id', { ...headersOf(VECTOR), 'webhook-id': '  ' }],
    ['no webhook-timestamp', { 'webhook-id': VECTOR.id, 'webhook-signature': VECTOR.signature }],
    ['no webhook-signature', { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp) }],
    ['an ISO timestamp', { ...headersOf(VECTOR), 'webhook-timestamp': new Date(VECTOR.timestamp * 1000).toISOString() }],
    ['a fractional timestamp', { ...headersOf(VECTOR), 'webhook-timestamp': `${VECTOR.timestamp}.5` }],
    ['a negative timestamp', { ...headersOf(VECTOR), 'webhook-timestamp': `-${VECTOR.timestamp}` }],
    ['a hex signature (the legacy header)', { ...headersOf(VECTOR), 'webhook-signature': 'ab'.repeat(32) }],
    ['a signature without its version', { ...headersOf(VECTOR), 'webhook-signature': VECTOR.signature.slice(3) }],
    ['only another version', { ...headersOf(VECTOR), 'webhook-signature': `v2,${VECTOR.signature.slice(3)}` }],
    ['a header sent twice', { ...headersOf(VECTOR), 'webhook-id': [VECTOR.id, 'msg_2'] }],
    ['a Headers without them', new Headers({ 'x-webhook-signature': 'ab'.repeat(32) })],
  ])('refuses %s as E_WEBHOOK_HEADER', (_name, headers) => {
    const error = refusal(() => verifyWebhook(VECTOR.body, headers, VECTOR.secret, { now }));
    expect(error.code).toBe('E_WEBHOOK_HEADER');
    expect(error.message).toMatch(/webhook-(id|timestamp|signature)/u);
  });

  it('names every missing header', () => {
    expect(refusal(() => verifyWebhook('', {}, VECTOR.secret)).message).toContain('webhook-id, webhook-timestamp, webhook-signature headers');
  });

  it('refuses no secret and a bad tolerance as configuration errors, not as a bad delivery', () => {
    for (const secrets of [[], '', [''], [VECTOR.secret, 42 as unknown as string]]) {
      expect(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), secrets, { now })).toThrow(StorageConfigError);
    }
    for (const toleranceSeconds of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => verifyWebhook(VECTOR.body, headersOf(VECTOR), VECTOR.secret, { now, toleranceSeconds })).toThrow(expect.objectContaining({ option: 'toleranceSeconds' }) as Error);
    }
  });

  it('has a guard that matches a look-alike from another copy of the package', () => {
    const lookAlike = Object.assign(new Error('from another copy'), { name: 'WebhookVerificationError' });
    expect(isWebhookVerificationError(lookAlike)).toBe(true);
    expect(isStorageError(lookAlike)).toBe(true);
    expect(isWebhookVerificationError(new StorageConfigError('x'))).toBe(false);
    expect(new WebhookVerificationError('x', 'E_WEBHOOK_SIGNATURE', { cause: 1 }).cause).toBe(1);
  });
});

describe('generateWebhookSecret', () => {
  it('is whsec_ and the standard base64 of 32 random bytes, new each time, taken by both packages', () => {
    const secrets = Array.from({ length: 20 }, generateWebhookSecret);
    expect(new Set(secrets).size).toBe(20);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/u);
      expect(webhookSecretKey(secret)).toHaveLength(32);
      expect(webhookSecretKey(secret)).toEqual(Buffer.from(secret.slice(6), 'base64'));
    }
    const secret = secrets[0] as string;
    const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': '' };
    headers['webhook-signature'] = signWebhook(headers['webhook-id'], Number(headers['webhook-timestamp']), '{}', secret);
    expect(new StandardWebhook(secret).verify('{}', headers)).toEqual({});
    expect(new SvixWebhook(secret).verify('{}', headers)).toEqual({});
  });
});
