/**
 * The relay's two calls on Postgres, as PL/pgSQL functions that migration 4 installs in the
 * store's schema: claim a batch of due deliveries, and record a round's outcomes. Each is one
 * round trip. PL/pgSQL keeps their plans (no planning per call), and each statement inside
 * still takes a fresh snapshot (READ COMMITTED), which the recount of events relies on.
 *
 * Their planner settings are fixed (`PLANNER`): every access is by key or along an index, so
 * the cost of a call is what it touches, never the size of the backlog, also on tables that
 * were never analyzed (without statistics the planner takes `status = 'pending'` to be rare,
 * and would read every pending row through a bitmap or a sequential scan).
 *
 * A change to these functions is a new migration that installs them again (CREATE OR REPLACE).
 */
import { randomUUID } from 'node:crypto';
import { ATTEMPT_LOG_LIMIT } from '../upload/model.js';
import { defaultIdempotencyKey, type ClaimOptions, type CompletedDelivery } from '../upload/ports.js';
import { attemptLogJson } from '../upload/sql-rows.js';
import { emitSql, lockEventsSql, settleSql } from './delivery-sql.js';
import { OUTBOX_CHANNEL } from './listen.js';
import type { Queryable } from './migrations.js';
import { isUuid, type Row } from './rows.js';

const PLANNER = 'SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off';

/** Columns of a claimed delivery's row: the delivery's own, then its event's (`e_`) and its endpoint's (`w_`). */
const CLAIM_COLUMNS: ReadonlyArray<readonly [name: string, type: string, source: string]> = [
  ...(
    [
      ['id', 'uuid'],
      ['event_id', 'uuid'],
      ['endpoint_id', 'uuid'],
      ['event_type', 'text'],
      ['status', 'text'],
      ['attempts', 'integer'],
      ['next_attempt_at', 'timestamptz'],
      ['last_status', 'integer'],
      ['last_error', 'text'],
      ['last_duration_ms', 'integer'],
      ['attempt_log', 'jsonb'],
      ['created_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
      ['delivered_at', 'timestamptz'],
    ] as const
  ).map(([name, type]) => [name, type, `c.${name}`] as const),
  ...(
    [
      ['aggregate_type', 'text'],
      ['aggregate_id', 'text'],
      ['payload', 'jsonb'],
      ['idempotency_key', 'text'],
      ['created_at', 'timestamptz'],
    ] as const
  ).map(([name, type]) => [`e_${name}`, type, `e.${name}`] as const),
  ...(
    [
      ['url', 'text'],
      ['secret', 'text'],
      ['previous_secret', 'text'],
      ['previous_secret_expires_at', 'timestamptz'],
      ['event_types', 'text[]'],
      ['is_active', 'boolean'],
      ['disabled_at', 'timestamptz'],
      ['disabled_reason', 'text'],
      ['failing_since', 'timestamptz'],
      ['last_success_at', 'timestamptz'],
      ['created_at', 'timestamptz'],
    ] as const
  ).map(([name, type]) => [`w_${name}`, type, `w.${name}`] as const),
];

/**
 * Take up to `p_limit` pending deliveries due at `p_now`, earliest due first (then in creation
 * order), that no other relay is claiming right now (SKIP LOCKED: passed over, never handed out
 * twice), count an attempt on each and set `next_attempt_at` to the lease. Only the first
 * `p_limit` entries of the partial index of pending deliveries are read.
 * https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE
 */
const claimFunctionSql = (s: string): string => `
  CREATE OR REPLACE FUNCTION ${s}.doorito_claim_deliveries(p_now timestamptz, p_limit integer, p_lease timestamptz)
  RETURNS TABLE (${CLAIM_COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')})
  LANGUAGE plpgsql ${PLANNER}
  AS $fn$
  #variable_conflict use_column
  BEGIN
    RETURN QUERY
    WITH due AS (
      SELECT d.id, d.next_attempt_at AS due_at, d.seq FROM ${s}.webhook_delivery AS d
      WHERE d.status = 'pending' AND d.next_attempt_at <= p_now
      ORDER BY d.next_attempt_at, d.seq
      LIMIT p_limit
      FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE ${s}.webhook_delivery AS d SET attempts = d.attempts + 1, next_attempt_at = p_lease, updated_at = p_now
      FROM due WHERE d.id = due.id
      RETURNING d.*, due.due_at
    )
    SELECT ${CLAIM_COLUMNS.map(([, , source]) => source).join(', ')}
    FROM claimed AS c
    JOIN ${s}.outbox_event AS e ON e.id = c.event_id
    JOIN ${s}.webhook_endpoint AS w ON w.id = c.endpoint_id
    ORDER BY c.due_at, c.seq;
  END
  $fn$`;

/**
 * Record a round, in the transaction of the call, locking deliveries, then endpoints (in id
 * order), then events (in id order), as every other statement of the store does:
 *
 * 1. compare-and-set each delivery on its lease (outcome, attempt, log), and apply the
 *    recorded items' endpoint health in item order (the last decides `failing_since`; any
 *    success sets `last_success_at`) and their disabling (when the endpoint is still active);
 * 2. fail the pending deliveries of the endpoints just disabled (this round's retries among
 *    them: disabling comes after the whole round, as in the memory store); those another relay
 *    is recording right now (row locked) are skipped rather than waited for: that relay
 *    records them, and one left pending fails when claimed next, its endpoint being inactive;
 * 3. emit the recorded items' notices;
 * 4. lock the touched events, then (a fresh snapshot, after the lock) recount their status.
 *
 * Returns the `ord` of each recorded item.
 */
const completeFunctionSql = (s: string): string => `
  CREATE OR REPLACE FUNCTION ${s}.doorito_complete_deliveries(
    p_ids uuid[], p_leases timestamptz[], p_statuses text[], p_next_attempts timestamptz[], p_errors text[],
    p_attempts jsonb[], p_attempt_statuses integer[], p_durations integer[], p_health text[], p_reasons text[], p_ords integer[],
    p_notice_ords integer[], p_notice_ids uuid[], p_notice_aggregate_types text[], p_notice_aggregate_ids text[],
    p_notice_event_types text[], p_notice_payloads jsonb[], p_notice_keys text[],
    p_channel text, p_prefix text, p_now timestamptz)
  RETURNS SETOF integer
  LANGUAGE plpgsql ${PLANNER}
  AS $fn$
  DECLARE
    v_recorded integer[];
    v_events uuid[];
    v_disabled uuid[];
    v_reasons text[];
    v_failed uuid[];
    v_notified bigint;
  BEGIN
    WITH v AS (
      SELECT * FROM unnest(p_ids, p_leases, p_statuses, p_next_attempts, p_errors, p_attempts, p_attempt_statuses, p_durations, p_health, p_reasons, p_ords)
        AS v(id, lease, status, next_attempt_at, error, attempt, attempt_status, duration_ms, health, reason, ord)
    ), upd AS (
      UPDATE ${s}.webhook_delivery AS d SET
        status = v.status,
        next_attempt_at = coalesce(v.next_attempt_at, d.next_attempt_at),
        last_error = v.error,
        delivered_at = CASE WHEN v.status = 'delivered' THEN p_now END,
        attempt_log = CASE WHEN v.attempt IS NULL THEN d.attempt_log ELSE (
          SELECT jsonb_agg(a.value ORDER BY a.n)
          FROM jsonb_array_elements(d.attempt_log || v.attempt) WITH ORDINALITY AS a(value, n)
          WHERE a.n > jsonb_array_length(d.attempt_log) + jsonb_array_length(v.attempt) - ${ATTEMPT_LOG_LIMIT}
        ) END,
        last_status = CASE WHEN v.attempt IS NULL THEN d.last_status ELSE v.attempt_status END,
        last_duration_ms = CASE WHEN v.attempt IS NULL THEN d.last_duration_ms ELSE v.duration_ms END,
        updated_at = p_now
      FROM v
      -- Pending, said so that it does not match the partial index of pending deliveries (the
      -- CHECK allows nothing else): the planner could otherwise read that whole index and
      -- filter it, taking pending rows for rare when the table has no statistics. By key only.
      WHERE d.id = v.id AND d.status NOT IN ('delivered', 'failed') AND d.next_attempt_at = v.lease
      RETURNING v.ord, d.event_id, d.endpoint_id, v.health, v.reason
    ), x AS (
      SELECT endpoint_id,
        coalesce(bool_or(health = 'success'), false) AS any_success,
        (array_agg(health ORDER BY ord DESC) FILTER (WHERE health IS NOT NULL))[1] AS last_health,
        (array_agg(reason ORDER BY ord) FILTER (WHERE reason IS NOT NULL))[1] AS reason
      FROM upd WHERE health IS NOT NULL OR reason IS NOT NULL
      GROUP BY endpoint_id
    ), held AS (
      SELECT w.id, w.is_active FROM ${s}.webhook_endpoint AS w
      WHERE w.id IN (SELECT endpoint_id FROM x) ORDER BY w.id FOR NO KEY UPDATE
    ), changed AS (
      UPDATE ${s}.webhook_endpoint AS w SET
        last_success_at = CASE WHEN x.any_success THEN p_now ELSE w.last_success_at END,
        failing_since = CASE
          WHEN x.last_health IS NULL THEN w.failing_since
          WHEN x.last_health = 'success' THEN NULL
          WHEN x.any_success THEN p_now
          ELSE coalesce(w.failing_since, p_now) END,
        is_active = w.is_active AND x.reason IS NULL,
        disabled_at = CASE WHEN x.reason IS NOT NULL AND held.is_active THEN p_now ELSE w.disabled_at END,
        disabled_reason = CASE WHEN x.reason IS NOT NULL AND held.is_active THEN x.reason ELSE w.disabled_reason END
      FROM x JOIN held ON held.id = x.endpoint_id
      WHERE w.id = x.endpoint_id
      RETURNING w.id, x.reason, x.reason IS NOT NULL AND held.is_active AS disabled
    )
    SELECT
      (SELECT array_agg(ord) FROM upd),
      (SELECT array_agg(DISTINCT event_id) FROM upd),
      (SELECT array_agg(id ORDER BY id) FROM changed WHERE disabled),
      (SELECT array_agg(reason ORDER BY id) FROM changed WHERE disabled)
    INTO v_recorded, v_events, v_disabled, v_reasons;
    IF v_recorded IS NULL THEN
      RETURN;
    END IF;

    IF v_disabled IS NOT NULL THEN
      WITH failed AS (
        UPDATE ${s}.webhook_delivery AS d SET status = 'failed', last_error = 'endpoint disabled: ' || r.reason, updated_at = p_now
        FROM unnest(v_disabled, v_reasons) AS r(endpoint_id, reason)
        WHERE d.endpoint_id = r.endpoint_id AND d.status = 'pending'
          AND d.id IN (
            SELECT p.id FROM ${s}.webhook_delivery AS p
            WHERE p.endpoint_id = ANY (v_disabled) AND p.status = 'pending'
            FOR UPDATE SKIP LOCKED
          )
        RETURNING d.event_id
      )
      SELECT array_agg(DISTINCT event_id) INTO v_failed FROM failed;
      v_events := v_events || coalesce(v_failed, '{}');
    END IF;

    IF p_notice_ords && v_recorded THEN
      ${emitSql(
        s,
        `SELECT i.id, i.aggregate_type, i.aggregate_id, i.event_type, i.payload, i.idempotency_key, i.n
         FROM unnest(p_notice_ids, p_notice_aggregate_types, p_notice_aggregate_ids, p_notice_event_types, p_notice_payloads, p_notice_keys, p_notice_ords)
           WITH ORDINALITY AS i(id, aggregate_type, aggregate_id, event_type, payload, idempotency_key, ord, n)
         WHERE i.ord = ANY (v_recorded)`,
        `SELECT count(pg_notify(p_channel, p_prefix || inserted.id::text)::text) INTO v_notified FROM inserted`,
      )};
    END IF;

    SELECT array_agg(DISTINCT id) INTO v_events FROM unnest(v_events) AS t(id);
    ${lockEventsSql(s, 'v_events', 'PERFORM')};
    ${settleSql(s, 'v_events', 'p_now')};
    RETURN QUERY SELECT unnest(v_recorded);
  END
  $fn$`;

/** Create (or replace) the relay's functions in the schema. */
export async function installRelayFunctions(db: Queryable, s: string): Promise<void> {
  await db.query(claimFunctionSql(s));
  await db.query(completeFunctionSql(s));
}

/** A claimed delivery's row, as the rows of the delivery, its event and its endpoint. */
export interface ClaimedRows {
  delivery: Row;
  event: Row;
  endpoint: Row;
}

const unprefixed = (row: Row, prefix: string): Row =>
  Object.fromEntries(CLAIM_COLUMNS.filter(([name]) => name.startsWith(prefix)).map(([name]) => [name.slice(prefix.length), row[name]]));

/** Claim deliveries (see the function). */
export async function claimRows(db: Queryable, s: string, { now, limit, leaseUntil }: ClaimOptions): Promise<ClaimedRows[]> {
  const { rows } = await db.query(`SELECT * FROM ${s}.doorito_claim_deliveries($1, $2, $3)`, [now, limit, leaseUntil]);
  return rows.map((row) => ({
    delivery: row,
    event: { ...unprefixed(row, 'e_'), id: row['event_id'], event_type: row['event_type'] },
    endpoint: { ...unprefixed(row, 'w_'), id: row['endpoint_id'] },
  }));
}

/** Record a round (see the function); returns, in item order, whether each was recorded. */
export async function completeDeliveries(
  db: Queryable,
  s: string,
  schemaName: string,
  items: ReadonlyArray<CompletedDelivery>,
  now: Date,
): Promise<boolean[]> {
  const recorded = items.map(() => false);
  // The first item of each claim only: a second one for the same delivery cannot hold its
  // lease any more once the first is recorded. Sorted by id, so that rows are locked in order.
  const firstOf = new Map<string, number>();
  for (const [index, item] of items.entries()) {
    const id = item.claimed.id.toLowerCase();
    if (isUuid(id) && !firstOf.has(id)) firstOf.set(id, index);
  }
  if (firstOf.size === 0) return recorded;
  const order = [...firstOf].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, index]) => index);
  const at = (index: number) => items[index] as CompletedDelivery;
  const notices = order.flatMap((index) => (at(index).emit ?? []).map((event) => ({ index, event })));
  const { rows } = await db.query<{ ord: number }>(
    `SELECT ord FROM ${s}.doorito_complete_deliveries(
       $1::uuid[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::text[], $6::jsonb[], $7::integer[], $8::integer[], $9::text[], $10::text[], $11::integer[],
       $12::integer[], $13::uuid[], $14::text[], $15::text[], $16::text[], $17::jsonb[], $18::text[], $19, $20, $21) AS ord`,
    [
      order.map((i) => at(i).claimed.id),
      order.map((i) => at(i).claimed.nextAttemptAt),
      order.map((i) => at(i).outcome.status),
      order.map((i) => {
        const { outcome } = at(i);
        return outcome.status === 'pending' ? outcome.nextAttemptAt : null;
      }),
      order.map((i) => {
        const { outcome } = at(i);
        return outcome.status === 'delivered' ? null : outcome.errorMessage;
      }),
      order.map((i) => {
        const { attempt } = at(i);
        return attempt === undefined ? null : attemptLogJson([attempt]);
      }),
      order.map((i) => at(i).attempt?.status ?? null),
      // The column is whole milliseconds; the log keeps the attempt as given.
      order.map((i) => {
        const { attempt } = at(i);
        return attempt === undefined ? null : Math.round(attempt.durationMs);
      }),
      order.map((i) => at(i).health ?? null),
      order.map((i) => at(i).disableEndpoint?.reason ?? null),
      order,
      notices.map((n) => n.index),
      notices.map(() => randomUUID()),
      notices.map((n) => n.event.aggregateType),
      notices.map((n) => n.event.aggregateId),
      notices.map((n) => n.event.eventType),
      notices.map((n) => JSON.stringify(n.event.payload)),
      notices.map((n) => n.event.idempotencyKey ?? defaultIdempotencyKey(n.event)),
      OUTBOX_CHANNEL,
      `${schemaName}:`,
      now,
    ],
  );
  for (const row of rows) recorded[Number(row.ord)] = true;
  return recorded;
}
