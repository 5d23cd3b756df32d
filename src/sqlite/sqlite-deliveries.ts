/**
 * What emitting an event means on SQLite, shared by the emitter (`SqliteView`), the relay's
 * statements (`SqliteOutbox`, for notices and redelivery) and migration 3: the subscription
 * rule in SQL, the deliveries an event gets, and an event's status over its deliveries.
 */
import { randomUUID } from 'node:crypto';
import { defaultIdempotencyKey, NOTICE_EVENT_PREFIX, type EmitResult, type NewOutboxEvent } from '../upload/ports.js';
import { ms, toEvent, type Row, type Statements } from './rows.js';

/**
 * A new random (v4) UUID per row, in SQL. Every call of randomblob()/random() is evaluated
 * anew for each row (they are not constant), which an uncorrelated subquery would not be.
 */
export const UUID_SQL =
  `lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || ` +
  `substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))`;

/**
 * {@link endpointSubscribes} in SQL: endpoint `w` (a `webhook_endpoint` alias) subscribes to the
 * event type `type` (an SQL expression). substr(), not LIKE: LIKE ignores ASCII case.
 */
export const subscribesSql = (w: string, type: string): string =>
  `(CASE WHEN json_array_length(${w}.event_types) = 0 ` +
  `THEN substr(${type}, 1, ${NOTICE_EVENT_PREFIX.length}) <> '${NOTICE_EVENT_PREFIX.replaceAll("'", "''")}' ` +
  `ELSE EXISTS (SELECT 1 FROM json_each(${w}.event_types) WHERE value = ${type}) END)`;

const ACTIVE_SUBSCRIBER = `w.is_active = 1 AND ${subscribesSql('w', '@type')}`;

// Due at once (next_attempt_at = the instant given). Endpoint creation order makes the rowids,
// so deliveries of one event due together are claimed in that order. An endpoint that already
// has a delivery of the event keeps it (redeliverEvent adds only the missing ones).
const INSERT_DELIVERIES = `
  INSERT INTO webhook_delivery (id, event_id, endpoint_id, event_type, status, attempts, next_attempt_at, attempt_log, created_at, updated_at)
  SELECT ${UUID_SQL}, @event, w.id, @type, 'pending', 0, @now, '[]', @now, @now
  FROM webhook_endpoint AS w
  WHERE ${ACTIVE_SUBSCRIBER}
  ORDER BY w.created_at, w.rowid
  ON CONFLICT (event_id, endpoint_id) DO NOTHING`;

// The old columns (attempts, max_attempts, next_attempt_at) keep their defaults: unused since
// migration 3. `WHERE true` is what SQLite needs to parse ON CONFLICT after INSERT … SELECT.
const INSERT_EVENT = `
  INSERT INTO outbox_event (id, aggregate_type, aggregate_id, event_type, payload, idempotency_key, status, delivered_at, created_at, updated_at)
  SELECT @id, @aggregateType, @aggregateId, @type, @payload, @key,
    CASE WHEN subscribed THEN 'pending' ELSE 'delivered' END, CASE WHEN subscribed THEN NULL ELSE @now END, @now, @now
  FROM (SELECT EXISTS (SELECT 1 FROM webhook_endpoint AS w WHERE ${ACTIVE_SUBSCRIBER}) AS subscribed)
  WHERE true
  ON CONFLICT (event_type, idempotency_key) DO NOTHING
  RETURNING *`;

/**
 * Add a pending delivery, due at `now`, of event `eventId` for every active endpoint that
 * subscribes to `eventType` and has none yet. Returns how many were added.
 */
export function insertDeliveries(sql: Statements, eventId: string, eventType: string, now: Date): number {
  return sql.run(INSERT_DELIVERIES, { event: eventId, type: eventType, now: ms(now) }).changes;
}

/**
 * Insert the event with its deliveries (the caller holds a transaction); with no subscriber,
 * the event is delivered at once. A duplicate (same event type and idempotency key) adds nothing.
 */
export function insertEvent(sql: Statements, input: NewOutboxEvent): EmitResult {
  const key = input.idempotencyKey ?? defaultIdempotencyKey(input);
  const now = new Date();
  const inserted = sql.one(INSERT_EVENT, {
    id: randomUUID(),
    aggregateType: input.aggregateType,
    aggregateId: input.aggregateId,
    type: input.eventType,
    payload: JSON.stringify(input.payload),
    key,
    now: ms(now),
  });
  if (inserted === undefined) {
    const existing = sql.one('SELECT * FROM outbox_event WHERE event_type = ? AND idempotency_key = ?', input.eventType, key);
    return { event: toEvent(existing as Row), duplicate: true };
  }
  if (inserted['status'] === 'pending') insertDeliveries(sql, String(inserted['id']), input.eventType, now);
  return { event: toEvent(inserted), duplicate: false };
}

// Each event gets the status of all its deliveries: any pending → pending; else any failed →
// failed, with the error of its first failed delivery; else delivered (also with none left).
// One search of the UNIQUE (event_id, endpoint_id) index per event (MATERIALIZED: SQLite would
// otherwise copy the subquery into every expression that reads s.status). An event already
// delivered keeps its delivered_at (deleting an endpoint does not deliver anything anew).
const SETTLE_EVENTS = `
  WITH s AS MATERIALIZED (
    SELECT t.value AS id, (
      SELECT CASE WHEN max(status = 'pending') THEN 'pending' WHEN max(status = 'failed') THEN 'failed' ELSE 'delivered' END
      FROM webhook_delivery WHERE event_id = t.value
    ) AS status
    FROM json_each(@ids) AS t
  )
  UPDATE outbox_event AS o SET
    status = s.status,
    error_message = CASE WHEN s.status = 'failed' THEN (
      SELECT last_error FROM webhook_delivery WHERE event_id = o.id AND status = 'failed' ORDER BY rowid LIMIT 1
    ) END,
    delivered_at = CASE WHEN s.status <> 'delivered' THEN NULL WHEN o.status = 'delivered' THEN o.delivered_at ELSE @now END,
    updated_at = @now
  FROM s
  WHERE o.id = s.id`;

/** Give each of these events the status of all its deliveries (see OutboxEventStatus). */
export function settleEvents(sql: Statements, eventIds: Iterable<string>, now: Date): void {
  const ids = [...new Set(eventIds)];
  if (ids.length > 0) sql.run(SETTLE_EVENTS, { ids: JSON.stringify(ids), now: ms(now) });
}
