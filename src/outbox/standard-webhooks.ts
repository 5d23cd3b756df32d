/**
 * Signatures per Standard Webhooks 1.0: `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "<webhook-id>.<webhook-timestamp>.<body>">`, the key being the endpoint secret's bytes.
 * https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#verifying-webhook-authenticity
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { StorageConfigError, WebhookVerificationError } from '../errors.js';
import { webhookSecretKey } from '../upload/webhook-secret.js';

/** Received headers: Node's `req.headers`, a plain object (any case), or a fetch `Headers`. */
export type WebhookHeaders =
  | { get(name: string): string | null | undefined }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface VerifyWebhookOptions {
  /**
   * How far `webhook-timestamp` may be from `now`, either way, in seconds. Older is a replay
   * (or a delivery that took that long); newer is a clock that runs ahead.
   * @default 300
   */
  toleranceSeconds?: number;
  /** The clock. @default () => new Date() */
  now?: () => Date;
}

/** What a verified delivery says about itself. */
export interface VerifiedWebhook {
  /** `webhook-id`: the same on every attempt of one event; dedupe on it. */
  id: string;
  /** `webhook-timestamp`: when this attempt was signed. */
  timestamp: Date;
}

/** The HMAC-SHA256 of `${id}.${timestamp}.${body}`, fed in parts so a binary body is never re-encoded. */
function hmac(key: Buffer, id: string, timestamp: number, body: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
}

/**
 * The `webhook-signature` value for one delivery: `v1,<base64>`, keyed with `secret` (`whsec_…`,
 * or a raw secret, whose UTF-8 bytes are the key). Several secrets give several signatures,
 * space-separated, any of which verifies.
 *
 * @param timestamp integer seconds since the epoch, as sent in `webhook-timestamp`
 * @example
 * signWebhook('msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')
 * // 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
 */
export function signWebhook(id: string, timestamp: number, body: string | Uint8Array, secret: string | readonly string[]): string {
  const secrets = typeof secret === 'string' ? [secret] : secret;
  return secrets.map((s) => `v1,${hmac(webhookSecretKey(s), id, timestamp, body).toString('base64')}`).join(' ');
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  let value: unknown;
  if (typeof (headers as { get?: unknown }).get === 'function') {
    value = (headers as { get(name: string): unknown }).get(name);
  } else {
    const record = headers as Readonly<Record<string, unknown>>;
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  // Node gives an array only for a header sent twice; one value is the only unambiguous reading.
  if (Array.isArray(value) && value.length === 1) value = value[0];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

const INTEGER_SECONDS = /^\d{1,15}$/u;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/u;

/**
 * Verify a Standard Webhooks delivery against its **raw** body (the bytes or the unparsed
 * string: re-serialized JSON can differ by a byte), in constant time. Accepts the delivery when
 * any `v1,` signature of `webhook-signature` matches any of `secrets` (so a receiver can hold
 * an old and a new secret), and `webhook-timestamp` is within `toleranceSeconds` of `now`.
 *
 * Throws {@link WebhookVerificationError} (`code` `E_WEBHOOK_HEADER`, `E_WEBHOOK_TIMESTAMP` or
 * `E_WEBHOOK_SIGNATURE`) when it is not; `StorageConfigError` for no secret or a bad option.
 * Dedupe on the returned `id`: a delivery can arrive more than once.
 *
 * @param secrets the endpoint's secret(s): `whsec_…`, or a raw secret from an earlier version
 * @example
 * app.post('/webhooks/doorito', express.raw({ type: 'application/json' }), (req, res) => {
 *   try {
 *     const { id } = verifyWebhook(req.body, req.headers, process.env.WEBHOOK_SECRET)
 *     // dedupe on id, then handle JSON.parse(req.body)
 *     res.sendStatus(204)
 *   } catch (error) {
 *     if (isWebhookVerificationError(error)) return res.status(401).json({ code: error.code })
 *     throw error
 *   }
 * })
 */
export function verifyWebhook(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secrets: string | readonly string[],
  options: VerifyWebhookOptions = {},
): VerifiedWebhook {
  const list: readonly unknown[] = typeof secrets === 'string' ? [secrets] : Array.isArray(secrets) ? secrets : [secrets];
  if (list.length === 0 || list.some((s) => typeof s !== 'string' || s === '')) {
    throw new StorageConfigError('verifyWebhook needs the endpoint secret: a non-empty string, or an array of them (e.g. the old and the new secret).', {
      option: 'secrets',
    });
  }
  const tolerance = options.toleranceSeconds ?? 300;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new StorageConfigError(`verifyWebhook option "toleranceSeconds" must be a number ≥ 0 (got ${String(tolerance)}).`, { option: 'toleranceSeconds' });
  }

  const id = header(headers, 'webhook-id');
  const timestampHeader = header(headers, 'webhook-timestamp');
  const signatureHeader = header(headers, 'webhook-signature');
  const missing = [id === undefined && 'webhook-id', timestampHeader === undefined && 'webhook-timestamp', signatureHeader === undefined && 'webhook-signature'].filter(Boolean);
  if (id === undefined || timestampHeader === undefined || signatureHeader === undefined) {
    throw new WebhookVerificationError(`The delivery lacks the ${missing.join(', ')} header${missing.length > 1 ? 's' : ''} of a Standard Webhooks request.`, 'E_WEBHOOK_HEADER');
  }
  if (!INTEGER_SECONDS.test(timestampHeader)) {
    throw new WebhookVerificationError('The webhook-timestamp header is not integer seconds since the epoch.', 'E_WEBHOOK_HEADER');
  }
  const timestamp = Number(timestampHeader);
  const now = Math.floor((options.now?.() ?? new Date()).getTime() / 1000);
  if (Math.abs(now - timestamp) > tolerance) {
    const skew = now - timestamp;
    throw new WebhookVerificationError(
      `The webhook-timestamp is ${Math.abs(skew)} s ${skew > 0 ? 'old' : 'in the future'}, beyond the tolerance of ${tolerance} s: ` +
        `${skew > 0 ? 'a replayed delivery' : 'a future timestamp'}, or a clock off by that much (keep both in sync with NTP).`,
      'E_WEBHOOK_TIMESTAMP',
    );
  }

  const candidates: Buffer[] = [];
  for (const entry of signatureHeader.split(' ')) {
    const comma = entry.indexOf(',');
    // Other versions (e.g. v1a, asymmetric) are skipped, as the spec says.
    if (comma === -1 || entry.slice(0, comma) !== 'v1') continue;
    const encoded = entry.slice(comma + 1);
    if (BASE64.test(encoded)) candidates.push(Buffer.from(encoded, 'base64'));
  }
  if (candidates.length === 0) {
    throw new WebhookVerificationError('The webhook-signature header holds no "v1,<base64>" signature.', 'E_WEBHOOK_HEADER');
  }
  for (const secret of list as readonly string[]) {
    const expected = hmac(webhookSecretKey(secret), id, timestamp, body);
    // timingSafeEqual needs equal lengths; a length is no secret.
    if (candidates.some((candidate) => candidate.length === expected.length && timingSafeEqual(candidate, expected))) {
      return { id, timestamp: new Date(timestamp * 1000) };
    }
  }
  throw new WebhookVerificationError(
    'No webhook-signature matches the body with the given secret(s): the delivery was altered or forged, the body was re-serialized (verify the raw bytes), or the secret is not this endpoint\'s.',
    'E_WEBHOOK_SIGNATURE',
  );
}
