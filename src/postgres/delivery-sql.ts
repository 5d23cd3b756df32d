/**
 * The SQL of webhook deliveries shared by the emitter, the relay's side and the migration:
 * which endpoints an event goes to, emitting events with their deliveries in one statement,
 * and an event's status over its deliveries.
 *
 * Lock order, the same everywhere so that concurrent relays and admin calls never wait on each
 * other in a circle: deliveries, then endpoints (by id), then events (by id).
 */
import { randomUUID } from 'node:crypto';
import { defaultIdempotencyKey, NOTICE_EVENT_PREFIX, type NewOutboxEvent } from '../upload/ports.js';
import { OUTBOX_CHANNEL } from './listen.js';
import type { Queryable } from './migrations.js';
import type { Row } from './rows.js';

/** `endpointSubscribes` in SQL: `endpoint` is a webhook_endpoint alias, `eventType` a text expression. */
export const subscribesSql = (endpoint: string, eventType: string): string =>
  `(CASE WHEN cardinality(${endpoint}.event_types) = 0 THEN NOT starts_with(${eventType}, '${NOTICE_EVENT_PREFIX}') ` +
  `ELSE ${eventType} = ANY (${endpoint}.event_types) END)`;

/** What {@link emitSql} inserts: rows of (id, aggregate_type, aggregate_id, event_type, payload, idempotency_key, n). */
const EMIT_INPUT = `
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[]) WITH ORDINALITY
    AS i(id, aggregate_type, aggregate_id, event_type, payload, idempotency_key, n)`;

/**
 * Insert the events of `input` (skipping those whose event_type + idempotency_key exist) with
 * one pending delivery per active subscribing endpoint, due at the event's `created_at`; an
 * event no active endpoint subscribes to is `delivered` at once. One statement, so atomic on
 * the pool too, and it reads the endpoints from the same snapshot it inserts with. The CTEs
 * end with `inserted` (the new event rows); `select` follows them and should NOTIFY for each
 * (delivered on commit). `created_at` in milliseconds: the relay compares it with a JS Date,
 * and a microsecond default could leave a new delivery a fraction of a millisecond in the
 * future of a relay that looks right after the commit.
 */
export const emitSql = (s: string, input: string, select: string): string => `
  WITH input AS (${input}
  ), clock AS MATERIALIZED (
    SELECT date_trunc('milliseconds', clock_timestamp()) AS at
  ), inserted AS (
    INSERT INTO ${s}.outbox_event
      (id, aggregate_type, aggregate_id, event_type, payload, idempotency_key, status, delivered_at, next_attempt_at, created_at, updated_at)
    SELECT i.id, i.aggregate_type, i.aggregate_id, i.event_type, i.payload, i.idempotency_key,
      CASE WHEN m.found THEN 'pending' ELSE 'delivered' END, CASE WHEN m.found THEN NULL ELSE clock.at END,
      clock.at, clock.at, clock.at
    FROM input AS i CROSS JOIN clock
    LEFT JOIN LATERAL (
      SELECT true AS found FROM ${s}.webhook_endpoint AS w WHERE w.is_active AND ${subscribesSql('w', 'i.event_type')} LIMIT 1
    ) AS m ON true
    ORDER BY i.n
    ON CONFLICT (event_type, idempotency_key) DO NOTHING
    RETURNING *
  ), deliveries AS (
    INSERT INTO ${s}.webhook_delivery (id, event_id, endpoint_id, event_type, status, attempts, next_attempt_at, attempt_log, created_at, updated_at)
    SELECT gen_random_uuid(), e.id, w.id, e.event_type, 'pending', 0, e.created_at, '[]', e.created_at, e.created_at
    FROM inserted AS e JOIN ${s}.webhook_endpoint AS w ON w.is_active AND ${subscribesSql('w', 'e.event_type')}
    ORDER BY e.created_at, e.id, w.created_at, w.id
  )
  ${select}`;

/**
 * Emit `events` in one statement; returns the rows inserted (duplicates are left out). The
 * NOTIFY payload is `<schema>:<event id>`, so each store wakes only for its own events.
 */
export async function emitEvents(db: Queryable, s: string, schemaName: string, events: readonly NewOutboxEvent[]): Promise<Row[]> {
  if (events.length === 0) return [];
  const { rows } = await db.query(emitSql(s, EMIT_INPUT, `SELECT inserted.*, pg_notify($7, $8 || inserted.id::text)::text AS notified FROM inserted`), [
    events.map(() => randomUUID()),
    events.map((e) => e.aggregateType),
    events.map((e) => e.aggregateId),
    events.map((e) => e.eventType),
    events.map((e) => JSON.stringify(e.payload)),
    events.map((e) => e.idempotencyKey ?? defaultIdempotencyKey(e)),
    OUTBOX_CHANNEL,
    `${schemaName}:`,
  ]);
  return rows;
}

/** Wake the relays listening on this schema (delivered on commit). */
export async function notifyRelays(db: Queryable, schemaName: string, what: string): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, `${schemaName}:${what}`]);
}

/**
 * The recount of {@link settleEvents}: every event of `ids` (a uuid[] expression) gets the
 * status of all its deliveries, read one event at a time through the (event_id, endpoint_id)
 * index (LATERAL, so no plan reads every delivery). `now` is a timestamptz expression.
 */
export const settleSql = (s: string, ids: string, now: string): string => `
  UPDATE ${s}.outbox_event AS e SET
    status = a.status,
    error_message = a.error,
    delivered_at = CASE WHEN a.status <> 'delivered' THEN NULL WHEN e.status = 'delivered' THEN e.delivered_at ELSE ${now} END,
    updated_at = ${now}
  FROM unnest(${ids}) AS x(id)
  CROSS JOIN LATERAL (
    SELECT
      CASE WHEN bool_or(d.status = 'pending') THEN 'pending' WHEN bool_or(d.status = 'failed') THEN 'failed' ELSE 'delivered' END AS status,
      CASE WHEN bool_or(d.status = 'pending') THEN NULL ELSE (array_agg(d.last_error ORDER BY d.seq) FILTER (WHERE d.status = 'failed'))[1] END AS error
    FROM ${s}.webhook_delivery AS d WHERE d.event_id = x.id
  ) AS a
  WHERE e.id = x.id AND (e.status, e.error_message) IS DISTINCT FROM (a.status, a.error)`;

/**
 * Lock the events of `ids` (a uuid[] expression) in id order, so that two transactions never
 * wait on each other's events in a circle. `verb` is PERFORM inside PL/pgSQL.
 */
export const lockEventsSql = (s: string, ids: string, verb: 'SELECT' | 'PERFORM' = 'SELECT'): string =>
  `${verb} 1 FROM ${s}.outbox_event WHERE id = ANY (${ids}) ORDER BY id FOR NO KEY UPDATE`;

/**
 * Give each event the status of all its deliveries: any pending → `pending`; else any failed →
 * `failed` (with the last error of its first failed delivery); else (also with none left)
 * `delivered`. Inside a transaction. The events are locked first, in id order, in a statement
 * of their own: the recount then runs on a snapshot taken after the lock, so it sees the
 * deliveries of any other transaction that settled the same event before (two relays finishing
 * the two deliveries of one event at once would otherwise each still see the other's as
 * pending, and leave the event pending for ever).
 */
export async function settleEvents(db: Queryable, s: string, eventIds: Iterable<string>, now: Date): Promise<void> {
  const ids = [...new Set(eventIds)].sort();
  if (ids.length === 0) return;
  await db.query(lockEventsSql(s, '$1::uuid[]'), [ids]);
  await db.query(settleSql(s, '$1::uuid[]', '$2::timestamptz'), [ids, now]);
}
