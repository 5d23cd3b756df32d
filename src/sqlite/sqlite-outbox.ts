/**
 * The relay's statements (the OutboxStore port) over one SQLite connection, synchronous. Every
 * write runs in one `BEGIN IMMEDIATE` transaction: SQLite has one writer at a time, so holding
 * the write lock from the first read is what `FOR UPDATE SKIP LOCKED` does on Postgres. The
 * claim and the completion of a round cost what they touch: index searches only, however many
 * deliveries are pending (see the EXPLAIN QUERY PLAN test in the SQLite contract test).
 */
import { randomUUID } from 'node:crypto';
import type { WebhookSecretBox } from '../outbox/secret-box.js';
import { ATTEMPT_LOG_LIMIT, type DeliveryAttempt, type OutboxDelivery, type OutboxEvent, type WebhookDelivery, type WebhookEndpoint } from '../upload/model.js';
import type { ClaimedDelivery, ClaimOptions, CompletedDelivery, DeliveryQuery, NewWebhookEndpoint, RecoveredEndpoint } from '../upload/ports.js';
import type { Rotation } from '../upload/webhook-endpoint.js';
import { ms, toDelivery, toEndpoint, toEvent, toWebhookDelivery, type Row, type Statements } from './rows.js';
import { insertDeliveries, insertEvent, settleEvents } from './sqlite-deliveries.js';

// A delivery row's columns (`webhook_delivery`), for the claim's JSON rows.
const DELIVERY_COLUMNS = [
  'id', 'event_id', 'endpoint_id', 'event_type', 'status', 'attempts', 'next_attempt_at', 'last_status', 'last_error',
  'last_duration_ms', 'attempt_log', 'created_at', 'updated_at', 'delivered_at',
] as const;
const EVENT_COLUMNS = ['aggregate_type', 'aggregate_id', 'payload', 'idempotency_key', 'created_at'] as const;

// The due deliveries, earliest first, from the partial index on (next_attempt_at) WHERE
// status = 'pending' (its entries are (next_attempt_at, rowid): rowid keeps deliveries due at
// the same millisecond in creation order), each with its event by primary key. One JSON text for
// the whole batch: better-sqlite3 builds a JS value per column per row, which costs more than
// the claim itself; one JSON.parse does not. json_group_array keeps no order: sorted in JS.
const DUE = `
  SELECT json_group_array(json_object(
    'rowid', d.rowid, ${DELIVERY_COLUMNS.map((c) => `'${c}', d.${c}`).join(', ')},
    'event', json_object(${EVENT_COLUMNS.map((c) => `'${c}', e.${c}`).join(', ')})
  )) AS due
  FROM (
    SELECT rowid AS claimed FROM webhook_delivery
    WHERE status = 'pending' AND next_attempt_at <= @now
    ORDER BY next_attempt_at, rowid
    LIMIT @limit
  ) AS due
  JOIN webhook_delivery AS d ON d.rowid = due.claimed
  JOIN outbox_event AS e ON e.id = d.event_id`;

const LEASE = `UPDATE webhook_delivery SET attempts = attempts + 1, next_attempt_at = @lease, updated_at = @now WHERE rowid IN (SELECT value FROM json_each(@rowids))`;

const ENDPOINTS = 'SELECT * FROM webhook_endpoint WHERE id IN (SELECT value FROM json_each(?))';

// The outcomes of a round in one statement, a compare-and-set on each lease: a claim another
// relay took over (or a delivery disabled meanwhile) changes nothing. An attempt is appended
// keeping the last ATTEMPT_LOG_LIMIT (json_each keys of the appended list are 0…n, n the old
// length). Items are searched by the primary key, one by one from the JSON list.
const RECORD = `
  UPDATE webhook_delivery AS d SET
    status = i.status,
    next_attempt_at = coalesce(i.next, d.next_attempt_at),
    last_error = i.error,
    delivered_at = CASE WHEN i.status = 'delivered' THEN @now ELSE d.delivered_at END,
    attempt_log = CASE WHEN i.attempt IS NULL THEN d.attempt_log ELSE (
      SELECT json_group_array(json(l.value) ORDER BY l.key) FROM json_each(json_insert(d.attempt_log, '$[#]', json(i.attempt))) AS l
      WHERE l.key > json_array_length(d.attempt_log) - ${ATTEMPT_LOG_LIMIT}
    ) END,
    last_status = CASE WHEN i.attempt IS NULL THEN d.last_status ELSE i.last_status END,
    last_duration_ms = CASE WHEN i.attempt IS NULL THEN d.last_duration_ms ELSE i.duration END,
    updated_at = @now
  FROM (
    SELECT value ->> 'id' AS id, value ->> 'lease' AS lease, value ->> 'status' AS status, value ->> 'next' AS next,
      value ->> 'error' AS error, value ->> 'attempt' AS attempt, value ->> 'lastStatus' AS last_status, value ->> 'duration' AS duration
    FROM json_each(@items)
  ) AS i
  WHERE d.id = i.id AND d.status = 'pending' AND d.next_attempt_at = i.lease
  RETURNING id, event_id, endpoint_id`;

// One statement per endpoint per round, for the net effect of its outcomes in order: any success
// sets last_success_at; failing_since is cleared by a last success, set to now by a failure after
// a success, and otherwise kept from the first failure of the run.
const HEALTH = `
  UPDATE webhook_endpoint SET
    last_success_at = CASE WHEN @succeeded THEN @now ELSE last_success_at END,
    failing_since = CASE WHEN @lastSucceeded THEN NULL WHEN @succeeded THEN @now ELSE coalesce(failing_since, @now) END
  WHERE id = @id`;

const DISABLE = `UPDATE webhook_endpoint SET is_active = 0, disabled_at = @now, disabled_reason = @reason WHERE id = @id AND is_active = 1`;
const FAIL_PENDING = `
  UPDATE webhook_delivery SET status = 'failed', last_error = @error, updated_at = @now
  WHERE endpoint_id = @id AND status = 'pending'
  RETURNING event_id`;

// Due now, attempts 0; the attempt log and the last attempt's fields stay (they are history).
const REQUEUE = `status = 'pending', attempts = 0, next_attempt_at = @now, delivered_at = NULL, updated_at = @now`;

const attemptOf = (attempt: DeliveryAttempt) => ({ ...attempt, at: attempt.at.toISOString() });

interface DueRow extends Row {
  rowid: number;
  next_attempt_at: number;
  event: Row;
}

export class SqliteOutbox {
  readonly #sql: Statements;
  readonly #box: WebhookSecretBox;
  /** Called after a commit that made something due (an event or a redelivery), to wake relays. */
  readonly #woken: () => void;

  constructor(sql: Statements, box: WebhookSecretBox, woken: () => void) {
    this.#sql = sql;
    this.#box = box;
    this.#woken = woken;
  }

  #endpoint(row: Row): WebhookEndpoint {
    return this.#box.openEndpoint(toEndpoint(row));
  }

  claimDeliveries({ now, limit, leaseUntil }: ClaimOptions): ClaimedDelivery[] {
    return this.#sql.write(() => {
      const due = JSON.parse(String(this.#sql.one(DUE, { now: ms(now), limit })?.['due'] ?? '[]')) as DueRow[];
      if (due.length === 0) return [];
      due.sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.rowid - b.rowid);
      this.#sql.run(LEASE, { lease: ms(leaseUntil), now: ms(now), rowids: JSON.stringify(due.map((row) => row.rowid)) });
      // Each endpoint read (and its secrets opened) once per batch, however many deliveries it has.
      const endpointIds = [...new Set(due.map((row) => String(row['endpoint_id'])))];
      const endpoints = new Map(this.#sql.all(ENDPOINTS, JSON.stringify(endpointIds)).map((row) => [String(row['id']), this.#endpoint(row)]));
      return due.map((row) => {
        const delivery = toWebhookDelivery(row);
        Object.assign(delivery, { attempts: delivery.attempts + 1, nextAttemptAt: leaseUntil, updatedAt: now });
        const event = toEvent({ ...row.event, id: row['event_id'], event_type: row['event_type'] });
        const endpoint = endpoints.get(delivery.endpointId) as WebhookEndpoint;
        return { delivery, event, endpoint: { ...endpoint, eventTypes: [...endpoint.eventTypes] } };
      });
    });
  }

  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, now: Date): boolean[] {
    let emitted = false;
    const recorded = this.#sql.write(() => {
      // A delivery listed twice is recorded once, the first time (the second's lease no longer holds).
      const first = new Map<string, number>();
      for (const [index, { claimed }] of items.entries()) if (!first.has(claimed.id)) first.set(claimed.id, index);
      const rows = this.#sql.all(RECORD, {
        now: ms(now),
        items: JSON.stringify(
          [...first.values()].map((index) => {
            const { claimed, outcome, attempt } = items[index] as CompletedDelivery;
            return {
              id: claimed.id,
              lease: ms(claimed.nextAttemptAt),
              status: outcome.status,
              ...(outcome.status === 'pending' ? { next: ms(outcome.nextAttemptAt) } : {}),
              ...(outcome.status === 'delivered' ? {} : { error: outcome.errorMessage }),
              ...(attempt === undefined ? {} : { attempt: attemptOf(attempt), lastStatus: attempt.status ?? null, duration: attempt.durationMs }),
            };
          }),
        ),
      });
      const done = new Map(rows.map((row) => [String(row['id']), String(row['endpoint_id'])]));
      // The endpoint of each recorded item, in item order; undefined: not recorded.
      const endpoints = items.map(({ claimed }, index) => (first.get(claimed.id) === index ? done.get(claimed.id) : undefined));
      const events = new Set(rows.map((row) => String(row['event_id'])));
      const health = new Map<string, { succeeded: boolean; lastSucceeded: boolean }>();
      for (const [index, { health: result }] of items.entries()) {
        const id = endpoints[index];
        if (id === undefined || result === undefined) continue;
        health.set(id, { succeeded: (health.get(id)?.succeeded ?? false) || result === 'success', lastSucceeded: result === 'success' });
      }
      for (const [id, { succeeded, lastSucceeded }] of health) {
        this.#sql.run(HEALTH, { id, now: ms(now), succeeded: succeeded ? 1 : 0, lastSucceeded: lastSucceeded ? 1 : 0 });
      }
      // After every outcome of the round is recorded, so a disable fails only the deliveries the
      // round did not attempt; then the notices, which skip an endpoint disabled just now.
      for (const [index, { disableEndpoint, emit }] of items.entries()) {
        const endpointId = endpoints[index];
        if (endpointId === undefined) continue;
        if (disableEndpoint !== undefined && this.#sql.run(DISABLE, { id: endpointId, now: ms(now), reason: disableEndpoint.reason }).changes > 0) {
          const failed = this.#sql.all(FAIL_PENDING, { id: endpointId, now: ms(now), error: `endpoint disabled: ${disableEndpoint.reason}` });
          for (const other of failed) events.add(String(other['event_id']));
        }
        for (const notice of emit ?? []) emitted = !insertEvent(this.#sql, notice).duplicate || emitted;
      }
      settleEvents(this.#sql, events, now);
      return endpoints.map((endpointId) => endpointId !== undefined);
    });
    if (emitted) this.#woken();
    return recorded;
  }

  getEvent(id: string): OutboxDelivery | undefined {
    const row = this.#sql.one('SELECT * FROM outbox_event WHERE id = ?', id);
    return row === undefined ? undefined : toDelivery(row);
  }

  /** Every event, oldest first (rowid: emission order within a millisecond). */
  listEvents(): OutboxEvent[] {
    return this.#sql.all('SELECT * FROM outbox_event ORDER BY created_at, rowid').map(toEvent);
  }

  getDelivery(id: string): WebhookDelivery | undefined {
    const row = this.#sql.one('SELECT * FROM webhook_delivery WHERE id = ?', id);
    return row === undefined ? undefined : toWebhookDelivery(row);
  }

  listDeliveries(query: DeliveryQuery = {}): WebhookDelivery[] {
    // Only the filters given, so each combination is one prepared statement that can use its
    // index: (endpoint_id, created_at), (event_id, endpoint_id) or (created_at).
    const where: string[] = [];
    const values: unknown[] = [];
    const filter = (clause: string, value: unknown) => {
      where.push(clause);
      values.push(value);
    };
    if (query.status !== undefined) filter('status = ?', query.status);
    if (query.endpointId !== undefined) filter('endpoint_id = ?', query.endpointId);
    if (query.eventId !== undefined) filter('event_id = ?', query.eventId);
    if (query.since !== undefined) filter('created_at >= ?', ms(query.since));
    const sql = `SELECT * FROM webhook_delivery ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return this.#sql.all(sql, ...values, query.limit ?? 100).map(toWebhookDelivery);
  }

  redeliver(deliveryId: string, now = new Date()): WebhookDelivery | undefined {
    const delivery = this.#sql.write(() => {
      const row = this.#sql.one(`UPDATE webhook_delivery SET ${REQUEUE} WHERE id = @id RETURNING *`, { id: deliveryId, now: ms(now) });
      if (row === undefined) return undefined;
      settleEvents(this.#sql, [String(row['event_id'])], now);
      return toWebhookDelivery(row);
    });
    if (delivery !== undefined) this.#woken();
    return delivery;
  }

  redeliverEvent(eventId: string, now = new Date()): WebhookDelivery[] {
    const deliveries = this.#sql.write(() => {
      const event = this.#sql.one('SELECT event_type FROM outbox_event WHERE id = ?', eventId);
      if (event === undefined) return undefined;
      this.#sql.run(`UPDATE webhook_delivery SET ${REQUEUE} WHERE event_id = @id`, { id: eventId, now: ms(now) });
      insertDeliveries(this.#sql, eventId, String(event['event_type']), now);
      settleEvents(this.#sql, [eventId], now);
      return this.#sql.all('SELECT * FROM webhook_delivery WHERE event_id = ? ORDER BY created_at, rowid', eventId).map(toWebhookDelivery);
    });
    if (deliveries === undefined) return [];
    this.#woken();
    return deliveries;
  }

  recoverEndpoint(endpointId: string, { since, now = new Date() }: { since: Date; now?: Date }): RecoveredEndpoint | undefined {
    const recovered = this.#sql.write(() => {
      const row = this.#sql.one(
        'UPDATE webhook_endpoint SET is_active = 1, disabled_at = NULL, disabled_reason = NULL, failing_since = NULL WHERE id = ? RETURNING *',
        endpointId,
      );
      if (row === undefined) return undefined;
      // The (endpoint_id, created_at) index: the endpoint's deliveries since `since`, not all of them.
      const requeued = this.#sql.all(`UPDATE webhook_delivery SET ${REQUEUE} WHERE endpoint_id = @id AND status = 'failed' AND created_at >= @since RETURNING event_id`, {
        id: endpointId,
        since: ms(since),
        now: ms(now),
      });
      settleEvents(this.#sql, requeued.map((r) => String(r['event_id'])), now);
      return { row, requeued: requeued.length };
    });
    if (recovered === undefined) return undefined;
    if (recovered.requeued > 0) this.#woken();
    return { endpoint: this.#endpoint(recovered.row), requeued: recovered.requeued };
  }

  deleteDeliveredEvents(before: Date): number {
    // The deliveries explicitly, not only by ON DELETE CASCADE: a host's Database may run with
    // foreign_keys off.
    const old = `SELECT id FROM outbox_event WHERE status = 'delivered' AND delivered_at < @before`;
    return this.#sql.write(() => {
      this.#sql.run(`DELETE FROM webhook_delivery WHERE event_id IN (${old})`, { before: ms(before) });
      return this.#sql.run(`DELETE FROM outbox_event WHERE id IN (${old})`, { before: ms(before) }).changes;
    });
  }

  /** `secret` is the one `checkNewWebhookEndpoint()` returned: the caller checks `input` (and its destination) first. */
  createWebhookEndpoint(input: NewWebhookEndpoint, secret: string): WebhookEndpoint {
    const id = randomUUID();
    const row = this.#sql.one(
      'INSERT INTO webhook_endpoint (id, url, secret, event_types, is_active, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *',
      id, input.url, this.#box.seal(secret, id), JSON.stringify(input.eventTypes ?? []), input.isActive === false ? 0 : 1, ms(new Date()),
    );
    return { ...toEndpoint(row as Row), secret };
  }

  getWebhookEndpoint(id: string): WebhookEndpoint | undefined {
    const row = this.#sql.one('SELECT * FROM webhook_endpoint WHERE id = ?', id);
    return row === undefined ? undefined : this.#endpoint(row);
  }

  /** Oldest first (rowid: creation order within a millisecond). */
  listWebhookEndpoints(): WebhookEndpoint[] {
    return this.#sql.all('SELECT * FROM webhook_endpoint ORDER BY created_at, rowid').map((row) => this.#endpoint(row));
  }

  setWebhookEndpointActive(id: string, isActive: boolean): WebhookEndpoint | undefined {
    const row = this.#sql.one(
      `UPDATE webhook_endpoint SET is_active = @active,
         disabled_at = CASE WHEN @active THEN NULL ELSE disabled_at END, disabled_reason = CASE WHEN @active THEN NULL ELSE disabled_reason END
       WHERE id = @id RETURNING *`,
      { id, active: isActive ? 1 : 0 },
    );
    return row === undefined ? undefined : this.#endpoint(row);
  }

  /** `rotation` checked by the caller before anything touches the database. */
  rotateWebhookSecret(id: string, rotation: Rotation): WebhookEndpoint | undefined {
    // The old value as stored (sealed when the store encrypts): SET reads the row before the update.
    const row = this.#sql.one(
      'UPDATE webhook_endpoint SET previous_secret = secret, previous_secret_expires_at = ?, secret = ? WHERE id = ? RETURNING *',
      ms(rotation.previousSecretExpiresAt), this.#box.seal(rotation.secret, id), id,
    );
    return row === undefined ? undefined : this.#endpoint(row);
  }

  deleteWebhookEndpoint(id: string, now = new Date()): void {
    this.#sql.write(() => {
      const deleted = this.#sql.all('DELETE FROM webhook_delivery WHERE endpoint_id = ? RETURNING event_id', id);
      this.#sql.run('DELETE FROM webhook_endpoint WHERE id = ?', id);
      // An event whose last pending delivery went with the endpoint is settled now, not left pending.
      settleEvents(this.#sql, deleted.map((r) => String(r['event_id'])), now);
    });
  }
}
