/**
 * The relay's statements (the OutboxStore port) over one SQLite connection, synchronous. The
 * claim runs in its own `BEGIN IMMEDIATE` transaction: SQLite has one writer at a time, so
 * holding the write lock from the first read is what `FOR UPDATE SKIP LOCKED` does on Postgres.
 */
import { randomUUID } from 'node:crypto';
import type { OutboxDelivery, OutboxEvent, WebhookEndpoint } from '../upload/model.js';
import { LEASE_EXPIRED_MESSAGE, type ClaimOptions, type DeliveryOutcome, type NewWebhookEndpoint } from '../upload/ports.js';
import { ms, toDelivery, toEndpoint, toEvent, type Row, type Statements } from './rows.js';
import { validateNewWebhookEndpoint } from '../upload/webhook-endpoint.js';


export function claimEvents(sql: Statements, options: ClaimOptions): OutboxDelivery[] {
  const now = ms(options.now);
  const claim = sql.db.transaction((): OutboxDelivery[] => {
    sql.run(
      `UPDATE outbox_event SET status = 'failed', error_message = ?, updated_at = ?
       WHERE status = 'pending' AND attempts >= max_attempts AND next_attempt_at <= ?`,
      LEASE_EXPIRED_MESSAGE, now, now,
    );
    // rowid breaks ties in insertion order: events emitted in the same millisecond share their instants.
    const due = sql.all(
      `SELECT id FROM outbox_event
       WHERE status = 'pending' AND attempts < max_attempts AND next_attempt_at <= ?
       ORDER BY next_attempt_at, created_at, rowid LIMIT ?`,
      now, options.limit,
    );
    return due.map((row) =>
      toDelivery(
        sql.one(
          'UPDATE outbox_event SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? WHERE id = ? RETURNING *',
          ms(options.leaseUntil), now, row['id'],
        ) as Row,
      ),
    );
  });
  return claim.immediate();
}

export function completeEvent(sql: Statements, claimed: Pick<OutboxDelivery, 'id' | 'nextAttemptAt'>, outcome: DeliveryOutcome, now: Date): boolean {
  // The lease is the compare-and-set: a claim whose lease another relay took over changes nothing.
  const holds = `WHERE id = ? AND status = 'pending' AND next_attempt_at = ?`;
  const lease = [claimed.id, ms(claimed.nextAttemptAt)];
  let changes: number;
  switch (outcome.status) {
    case 'delivered':
      changes = sql.run(`UPDATE outbox_event SET status = 'delivered', delivered_at = ?, error_message = NULL, updated_at = ? ${holds}`, ms(now), ms(now), ...lease).changes;
      break;
    case 'pending':
      changes = sql.run(`UPDATE outbox_event SET next_attempt_at = ?, error_message = ?, updated_at = ? ${holds}`, ms(outcome.nextAttemptAt), outcome.errorMessage, ms(now), ...lease).changes;
      break;
    case 'failed':
      changes = sql.run(`UPDATE outbox_event SET status = 'failed', error_message = ?, updated_at = ? ${holds}`, outcome.errorMessage, ms(now), ...lease).changes;
      break;
  }
  return changes > 0;
}

export function getEvent(sql: Statements, id: string): OutboxDelivery | undefined {
  const row = sql.one('SELECT * FROM outbox_event WHERE id = ?', id);
  return row === undefined ? undefined : toDelivery(row);
}

export function listEvents(sql: Statements): OutboxEvent[] {
  return sql.all('SELECT * FROM outbox_event ORDER BY created_at, rowid').map(toEvent);
}

export function deleteDeliveredEvents(sql: Statements, before: Date): number {
  return sql.run(`DELETE FROM outbox_event WHERE status = 'delivered' AND delivered_at < ?`, ms(before)).changes;
}

export function createWebhookEndpoint(sql: Statements, endpoint: NewWebhookEndpoint): WebhookEndpoint {
  const secret = validateNewWebhookEndpoint(endpoint);
  const row = sql.one(
    'INSERT INTO webhook_endpoint (id, url, secret, event_types, is_active, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *',
    randomUUID(), endpoint.url, secret, JSON.stringify(endpoint.eventTypes ?? []), endpoint.isActive === false ? 0 : 1, ms(new Date()),
  );
  return toEndpoint(row as Row);
}

export function listWebhookEndpoints(sql: Statements): WebhookEndpoint[] {
  return sql.all('SELECT * FROM webhook_endpoint ORDER BY created_at, rowid').map(toEndpoint);
}

export function setWebhookEndpointActive(sql: Statements, id: string, isActive: boolean): WebhookEndpoint | undefined {
  const row = sql.one('UPDATE webhook_endpoint SET is_active = ? WHERE id = ? RETURNING *', isActive ? 1 : 0, id);
  return row === undefined ? undefined : toEndpoint(row);
}

export function deleteWebhookEndpoint(sql: Statements, id: string): void {
  sql.run('DELETE FROM webhook_endpoint WHERE id = ?', id);
}
