// The outbox's deliveries (one per event and endpoint) as a JSON API: what the page's deliveries
// panel shows, and its Redeliver button.
import express from 'express';
import { HttpError } from './http-error.mjs';

const LIMIT = 50;
const STATUSES = new Set(['pending', 'delivered', 'failed']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/iu;

/** An endpoint URL as the API shows it: origin and path, never credentials or a query (it may hold a token). */
export function printableUrl(url) {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return null;
  }
}

/** A delivery as the API shows it; `endpointUrl` already printable. */
export function deliveryJson(delivery, endpointUrl) {
  return {
    id: delivery.id,
    event_id: delivery.eventId,
    event_type: delivery.eventType,
    endpoint_id: delivery.endpointId,
    endpoint_url: endpointUrl ?? null,
    status: delivery.status,
    attempts: delivery.attempts,
    last_status: delivery.lastStatus ?? null,
    last_error: delivery.lastError ?? null,
    last_duration_ms: delivery.lastDurationMs ?? null,
    // Only a pending delivery is due; the field means nothing once it is settled.
    next_attempt_at: delivery.status === 'pending' ? delivery.nextAttemptAt.toISOString() : null,
    delivered_at: delivery.deliveredAt?.toISOString() ?? null,
    created_at: delivery.createdAt.toISOString(),
    updated_at: delivery.updatedAt.toISOString(),
  };
}

/**
 * A browser sends `Sec-Fetch-Site` with every request: refuse a change that another site's page
 * asked for (a plain form POST needs no CORS preflight). curl and servers send no such header.
 */
function sameOrigin(req, res, next) {
  const site = req.get('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new HttpError(403, 'cross_site', 'This action is only accepted from the portal page itself.');
  }
  next();
}

export function deliveryRoutes({ store }) {
  const router = express.Router();
  const urls = async () => new Map((await store.listWebhookEndpoints()).map((endpoint) => [endpoint.id, printableUrl(endpoint.url)]));

  router.get('/api/deliveries', async (req, res) => {
    const status = req.query.status === undefined ? undefined : String(req.query.status);
    if (status !== undefined && !STATUSES.has(status)) throw new HttpError(400, 'bad_status', `status must be one of ${[...STATUSES].join(', ')}.`);
    const limit = Math.min(Math.max(Number.parseInt(String(req.query.limit ?? LIMIT), 10) || LIMIT, 1), LIMIT);
    const [deliveries, endpointUrls] = await Promise.all([store.listDeliveries({ limit, ...(status === undefined ? {} : { status }) }), urls()]);
    res.set('Cache-Control', 'no-store');
    res.json({ items: deliveries.map((d) => deliveryJson(d, endpointUrls.get(d.endpointId))) });
  });

  router.post('/api/deliveries/:id/redeliver', sameOrigin, async (req, res) => {
    // Not a UUID: no such delivery (and Postgres would refuse the cast).
    const delivery = UUID.test(req.params.id) ? await store.redeliver(req.params.id) : undefined;
    if (delivery === undefined) throw new HttpError(404, 'not_found', 'No delivery has this id.');
    const endpoint = await store.getWebhookEndpoint(delivery.endpointId);
    res.json(deliveryJson(delivery, endpoint === undefined ? null : printableUrl(endpoint.url)));
  });

  return router;
}
