/**
 * The relay's side of the Postgres outbox: claims under a lease with `FOR UPDATE SKIP LOCKED`,
 * outcomes recorded with a compare-and-set on the lease, webhook endpoints, LISTEN/NOTIFY.
 */
import { randomUUID } from 'node:crypto';
import type { OutboxDelivery, WebhookEndpoint } from '../upload/model.js';
import { LEASE_EXPIRED_MESSAGE, type ClaimOptions, type CompletedDelivery, type DeliveryOutcome, type NewWebhookEndpoint, type OutboxStore } from '../upload/ports.js';
import type { Listen } from './listen.js';
import type { PoolLike } from './migrations.js';
import { isUuid, toDelivery, toEndpoint } from './rows.js';
import { validateNewWebhookEndpoint } from '../upload/webhook-endpoint.js';

export class PostgresOutbox implements OutboxStore {
  readonly #pool: PoolLike;
  readonly #s: string;
  readonly #schemaName: string;
  readonly #listen: Listen;

  constructor(pool: PoolLike, quotedSchema: string, schemaName: string, listen: Listen) {
    this.#pool = pool;
    this.#s = quotedSchema;
    this.#schemaName = schemaName;
    this.#listen = listen;
  }

  async claimEvents({ now, limit, leaseUntil }: ClaimOptions): Promise<OutboxDelivery[]> {
    const s = this.#s;
    // One statement, so one short transaction. SKIP LOCKED: rows another relay is claiming right
    // now are passed over instead of waited for, and never handed out twice.
    // https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE
    const { rows } = await this.#pool.query(
      `WITH expired AS (
         UPDATE ${s}.outbox_event SET status = 'failed', error_message = $4, updated_at = $1
         WHERE id IN (SELECT id FROM ${s}.outbox_event
                      WHERE status = 'pending' AND next_attempt_at <= $1 AND attempts >= max_attempts
                      FOR UPDATE SKIP LOCKED)
       ), due AS (
         SELECT id FROM ${s}.outbox_event
         WHERE status = 'pending' AND next_attempt_at <= $1 AND attempts < max_attempts
         ORDER BY next_attempt_at, created_at
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${s}.outbox_event AS e SET attempts = e.attempts + 1, next_attempt_at = $3, updated_at = $1
       FROM due WHERE e.id = due.id
       RETURNING e.*`,
      [now, limit, leaseUntil, LEASE_EXPIRED_MESSAGE],
    );
    return rows.map(toDelivery).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  }

  async completeEvent(claimed: Pick<OutboxDelivery, 'id' | 'nextAttemptAt'>, outcome: DeliveryOutcome, now: Date): Promise<boolean> {
    const [recorded] = await this.completeEvents([{ claimed, outcome }], now);
    return recorded === true;
  }

  async completeEvents(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]> {
    const valid = items.filter((item) => isUuid(item.claimed.id));
    if (valid.length === 0) return items.map(() => false);
    // One statement for the round: each row is a compare-and-set on its own lease.
    const { rows } = await this.#pool.query<{ id: string }>(
      `UPDATE ${this.#s}.outbox_event AS e SET
         status = v.status,
         delivered_at = CASE WHEN v.status = 'delivered' THEN $6::timestamptz ELSE e.delivered_at END,
         next_attempt_at = COALESCE(v.next_attempt_at, e.next_attempt_at),
         error_message = v.error_message,
         updated_at = $6::timestamptz
       FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::text[]) AS v(id, lease, status, next_attempt_at, error_message)
       WHERE e.id = v.id AND e.status = 'pending' AND e.next_attempt_at = v.lease
       RETURNING e.id`,
      [
        valid.map((item) => item.claimed.id),
        valid.map((item) => item.claimed.nextAttemptAt),
        valid.map((item) => item.outcome.status),
        valid.map((item) => (item.outcome.status === 'pending' ? item.outcome.nextAttemptAt : null)),
        valid.map((item) => (item.outcome.status === 'delivered' ? null : item.outcome.errorMessage)),
        now,
      ],
    );
    const recorded = new Set(rows.map((row) => String(row.id)));
    return items.map((item) => recorded.has(item.claimed.id.toLowerCase()));
  }

  async getEvent(id: string): Promise<OutboxDelivery | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#s}.outbox_event WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : toDelivery(rows[0]);
  }

  async deleteDeliveredEvents(before: Date): Promise<number> {
    const { rowCount } = await this.#pool.query(`DELETE FROM ${this.#s}.outbox_event WHERE status = 'delivered' AND delivered_at < $1`, [before]);
    return rowCount ?? 0;
  }

  async createWebhookEndpoint(endpoint: NewWebhookEndpoint): Promise<WebhookEndpoint> {
    const secret = validateNewWebhookEndpoint(endpoint);
    const { rows } = await this.#pool.query(
      `INSERT INTO ${this.#s}.webhook_endpoint (id, url, secret, event_types, is_active, created_at)
       VALUES ($1, $2, $3, $4, $5, clock_timestamp()) RETURNING *`,
      [randomUUID(), endpoint.url, secret, endpoint.eventTypes ?? [], endpoint.isActive ?? true],
    );
    return toEndpoint(rows[0] as Record<string, unknown>);
  }

  async listWebhookEndpoints(): Promise<WebhookEndpoint[]> {
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#s}.webhook_endpoint ORDER BY created_at, id`);
    return rows.map(toEndpoint);
  }

  async setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.#pool.query(`UPDATE ${this.#s}.webhook_endpoint SET is_active = $2 WHERE id = $1 RETURNING *`, [id, isActive]);
    return rows[0] === undefined ? undefined : toEndpoint(rows[0]);
  }

  async deleteWebhookEndpoint(id: string): Promise<void> {
    if (!isUuid(id)) return;
    await this.#pool.query(`DELETE FROM ${this.#s}.webhook_endpoint WHERE id = $1`, [id]);
  }

  /**
   * Wake-ups by LISTEN/NOTIFY: on a pool, on a connection of its own (replaced when it breaks);
   * on a single client, on that client. Only this schema's events wake the listener.
   */
  async onEventCommitted(listener: () => void): Promise<() => Promise<void>> {
    const prefix = `${this.#schemaName}:`;
    return this.#listen((payload) => {
      if (payload.startsWith(prefix)) listener();
    }, listener);
  }
}
