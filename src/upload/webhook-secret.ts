/**
 * Webhook endpoint secrets in the Standard Webhooks form (`whsec_` + base64 of 24–64 random
 * bytes, the HMAC key being those bytes), and the raw strings earlier versions stored.
 * https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#signature-scheme
 */
import { randomBytes } from 'node:crypto';

/** The prefix of a Standard Webhooks secret. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

/**
 * A new endpoint secret: `whsec_` + the base64 of 32 random bytes (from `node:crypto`). Hand it to
 * the receiver as is; `standardwebhooks`, `svix` and `verifyWebhook` all take this form.
 *
 * @example
 * const secret = generateWebhookSecret() // 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw…'
 * await store.createWebhookEndpoint({ url, secret })
 */
export function generateWebhookSecret(): string {
  return `${WEBHOOK_SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

/** The key bytes of a `whsec_` secret, or why it is not one (never the value). */
function decodePrefixed(secret: string): Buffer | string {
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  const key = Buffer.from(encoded, 'base64');
  // Node decodes base64 leniently; the receivers' libraries do not, so only the canonical form counts.
  if (encoded === '' || key.toString('base64') !== encoded) return 'the part after "whsec_" is not standard base64 (with its "=" padding)';
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) return `it decodes to ${key.length} bytes, not ${MIN_KEY_BYTES}–${MAX_KEY_BYTES}`;
  return key;
}

/**
 * Why `secret` cannot be a new endpoint's secret, or undefined when it can: a `whsec_` secret must
 * decode to 24–64 bytes; any other non-blank string is a raw secret.
 */
export function webhookSecretProblem(secret: string): string | undefined {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) return undefined;
  const key = decodePrefixed(secret);
  return typeof key === 'string' ? key : undefined;
}

/**
 * The HMAC key of a secret: the decoded bytes of a well-formed `whsec_` secret; for any other
 * string (a raw secret, as earlier versions stored them), its UTF-8 bytes.
 */
export function webhookSecretKey(secret: string): Buffer {
  if (secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    const key = decodePrefixed(secret);
    if (typeof key !== 'string') return key;
  }
  return Buffer.from(secret, 'utf8');
}
