import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Hex HMAC-SHA256 of `body` keyed with `secret`: the `x-webhook-signature` header, sent only with
 * `legacySignatureHeaders: true`.
 * @deprecated It signs the body alone, so a captured delivery verifies forever. Deliveries are
 * signed per Standard Webhooks (`webhook-signature`); verify them with `verifyWebhook`. Removed in
 * the next minor release.
 */
export function signWebhookBody(body: string | Uint8Array, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

const HEX_SHA256 = /^[0-9a-f]{64}$/iu;

/**
 * @deprecated Checks the legacy `x-webhook-signature` (body only, replayable), sent only with the
 * relay's `legacySignatureHeaders: true`. Use `verifyWebhook(body, headers, secret)`, which
 * checks `webhook-signature` and the timestamp. Removed in the next minor release.
 *
 * Check an `x-webhook-signature` header against the exact request body, in constant time.
 * Pass the body as received (raw bytes or the unparsed string): re-serialized JSON may differ.
 *
 * @example
 * app.post('/webhooks/doorito', express.raw({ type: 'application/json' }), (req, res) => {
 *   if (!verifyWebhookSignature(req.body, req.get('x-webhook-signature'), process.env.WEBHOOK_SECRET)) {
 *     return res.sendStatus(401)
 *   }
 *   // dedupe on req.get('x-webhook-delivery'), then handle JSON.parse(req.body)
 *   res.sendStatus(204)
 * })
 */
export function verifyWebhookSignature(body: string | Uint8Array, signature: string | null | undefined, secret: string): boolean {
  if (typeof signature !== 'string' || !HEX_SHA256.test(signature)) return false;
  const expected = Buffer.from(signWebhookBody(body, secret), 'hex');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}
