// The demo webhook receiver: what an external system would do with `file.stored`. It verifies the
// Standard Webhooks signature and timestamp on the raw body, dedupes on webhook-id, then fetches
// `payload.url` and compares the bytes' sha256 with `payload.sha256`. A redelivery carries the
// same webhook-id: it is verified (signature, timestamp) but not processed again, and shows the
// verdict of the first check.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isWebhookVerificationError, verifyWebhook } from '@doorito/storage/outbox';

const KEEP = 50;

async function sha256Of(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok || response.body === null) throw new Error(`GET of payload.url answered HTTP ${response.status}`);
  const hash = createHash('sha256');
  // Streamed through the hash: a 50 MiB file is never held whole.
  await pipeline(Readable.fromWeb(response.body), hash);
  return hash.digest('hex');
}

export function createDemoReceiver({ secret }) {
  /** Newest first. */
  const deliveries = [];
  const seen = new Set();
  /** webhook-id → the sha256 check of its first delivery: Promise<{ sha256_match, error }>. */
  const verdicts = new Map();
  const inFlight = new Set();
  const stop = new AbortController();

  const remember = (entry) => {
    deliveries.unshift(entry);
    deliveries.length = Math.min(deliveries.length, KEEP);
  };
  const track = (promise) => {
    const tracked = promise.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  return {
    /** Express handler; mount it behind `express.raw()` so `req.body` is the exact bytes. */
    handle(req, res) {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const delivery = req.get('webhook-id') ?? '';
      let rejected = null;
      try {
        verifyWebhook(body, req.headers, secret);
      } catch (error) {
        if (!isWebhookVerificationError(error)) throw error;
        rejected = error;
      }
      const entry = {
        delivery,
        event: req.get('x-webhook-event') ?? '',
        received_at: new Date().toISOString(),
        signature_valid: rejected === null,
        /** Why it was refused: E_WEBHOOK_HEADER, E_WEBHOOK_TIMESTAMP or E_WEBHOOK_SIGNATURE. */
        rejected: rejected?.code ?? null,
        duplicate: seen.has(delivery),
        file_id: null,
        original_filename: null,
        sha256_match: null,
        error: null,
      };
      if (rejected !== null) {
        remember(entry);
        // The message says which check failed; it holds no secret and no signature.
        return res.status(401).json({ code: 'bad_signature', message: rejected.message });
      }
      let payload;
      try {
        payload = JSON.parse(body.toString('utf8'));
      } catch {
        entry.error = 'body is not JSON';
        remember(entry);
        return res.status(400).json({ code: 'bad_payload', message: 'The body is not JSON.' });
      }
      entry.file_id = typeof payload.file_id === 'string' ? payload.file_id : null;
      entry.original_filename = typeof payload.original_filename === 'string' ? payload.original_filename : null;
      remember(entry);
      // Answer at once; the check runs afterwards (a slow answer would count as a failed attempt).
      res.status(204).end();
      if (entry.duplicate) {
        const first = verdicts.get(delivery);
        if (first !== undefined) track(first.then((verdict) => Object.assign(entry, verdict)));
        return;
      }
      seen.add(delivery);
      if (typeof payload.url !== 'string' || typeof payload.sha256 !== 'string') return;
      const verdict = sha256Of(payload.url, stop.signal).then(
        (sha256) => (sha256 === payload.sha256 ? { sha256_match: true, error: null } : { sha256_match: false, error: 'the bytes at payload.url do not match payload.sha256' }),
        (error) => ({ sha256_match: false, error: error instanceof Error ? error.message : String(error) }),
      );
      verdicts.set(delivery, verdict);
      track(verdict.then((result) => Object.assign(entry, result)));
    },
    list: () => deliveries,
    /** Stop the checks in flight and wait for them. */
    async settled() {
      stop.abort();
      await Promise.allSettled([...inFlight]);
    },
  };
}
