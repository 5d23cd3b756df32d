/**
 * The relay's side of the Postgres outbox: claims and rounds (the functions of
 * relay-functions.ts), deliveries, dead letters and redelivery, webhook endpoints (secrets
 * sealed at rest with a `secretsKey`), LISTEN/NOTIFY.
 */
import { randomUUID } from 'node:crypto';
import type { WebhookSecretBox } from '../outbox/secret-box.js';
import type { OutboxDelivery, WebhookDelivery, WebhookEndpoint } from '../upload/model.js';
import type {
  ClaimedDelivery,
  ClaimOptions,
  CompletedDelivery,
  DeliveryQuery,
  NewWebhookEndpoint,
  OutboxStore,
  RecoveredEndpoint,
  RotateSecretOptions,
} from '../upload/ports.js';
import { checkNewWebhookEndpoint, validateRotation, type EndpointGuardOptions } from '../upload/webhook-endpoint.js';
import { notifyRelays, settleEvents, subscribesSql } from './delivery-sql.js';
import { OUTBOX_CHANNEL, type Listen } from './listen.js';
import type { PoolLike, Queryable } from './migrations.js';
import { claimRows, completeDeliveries } from './relay-functions.js';
import { isUuid, toDelivery, toEndpoint, toEvent, toWebhookDelivery, type Row } from './rows.js';
import { inTransaction } from './transaction.js';

/** What a redelivered delivery becomes: due at `$2`, attempts counted from 0; its log stays. */
const REDELIVER_SET = `status = 'pending', attempts = 0, next_attempt_at = $2::timestamptz, delivered_at = NULL, updated_at = $2::timestamptz`;

export class PostgresOutbox implements OutboxStore {
  readonly #pool: PoolLike;
  readonly #s: string;
  readonly #schemaName: string;
  readonly #listen: Listen;
  readonly #secrets: WebhookSecretBox;
  readonly #guard: EndpointGuardOptions;

  constructor(pool: PoolLike, quotedSchema: string, schemaName: string, listen: Listen, secrets: WebhookSecretBox, guard: EndpointGuardOptions) {
    this.#pool = pool;
    this.#s = quotedSchema;
    this.#schemaName = schemaName;
    this.#listen = listen;
    this.#secrets = secrets;
    this.#guard = { allowPrivateNetworks: guard.allowPrivateNetworks === true };
  }

  #endpoint(row: Row): WebhookEndpoint {
    return this.#secrets.openEndpoint(toEndpoint(row));
  }

  async claimDeliveries(options: ClaimOptions): Promise<ClaimedDelivery[]> {
    const rows = await claimRows(this.#pool, this.#s, options);
    return rows.map((row) => ({ delivery: toWebhookDelivery(row.delivery), event: toEvent(row.event), endpoint: this.#endpoint(row.endpoint) }));
  }

  /** One call of the relay's round function: its own transaction, on the pool too. */
  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, now: Date): Promise<boolean[]> {
    return completeDeliveries(this.#pool, this.#s, this.#schemaName, items, now);
  }

  async getEvent(id: string): Promise<OutboxDelivery | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#s}.outbox_event WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : toDelivery(rows[0]);
  }

  async getDelivery(id: string): Promise<WebhookDelivery | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#s}.webhook_delivery WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : toWebhookDelivery(rows[0]);
  }

  async listDeliveries(query: DeliveryQuery = {}): Promise<WebhookDelivery[]> {
    const values: unknown[] = [query.limit ?? 100];
    const where: string[] = [];
    const filter = (condition: (placeholder: string) => string, value: unknown) => {
      values.push(value);
      where.push(condition(`$${values.length}`));
    };
    for (const id of [query.endpointId, query.eventId]) if (id !== undefined && !isUuid(id)) return [];
    if (query.status !== undefined) filter((p) => `status = ${p}`, query.status);
    if (query.endpointId !== undefined) filter((p) => `endpoint_id = ${p}`, query.endpointId);
    if (query.eventId !== undefined) filter((p) => `event_id = ${p}`, query.eventId);
    if (query.since !== undefined) filter((p) => `created_at >= ${p}`, query.since);
    const { rows } = await this.#pool.query(
      `SELECT * FROM ${this.#s}.webhook_delivery ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
       ORDER BY created_at DESC, id DESC LIMIT $1`,
      values,
    );
    return rows.map(toWebhookDelivery);
  }

  async redeliver(deliveryId: string, now: Date = new Date()): Promise<WebhookDelivery | undefined> {
    if (!isUuid(deliveryId)) return undefined;
    const s = this.#s;
    // One statement: the delivery, then its event (the lock order), then the wake-up on commit.
    const { rows } = await this.#pool.query(
      `WITH d AS (
         UPDATE ${s}.webhook_delivery SET ${REDELIVER_SET} WHERE id = $1 RETURNING *
       ), e AS (
         UPDATE ${s}.outbox_event AS e SET status = 'pending', delivered_at = NULL, error_message = NULL, updated_at = $2::timestamptz
         FROM d WHERE e.id = d.event_id
       )
       SELECT d.*, pg_notify($3, $4 || d.event_id::text)::text AS notified FROM d`,
      [deliveryId, now, ...this.#notice()],
    );
    return rows[0] === undefined ? undefined : toWebhookDelivery(rows[0]);
  }

  async redeliverEvent(eventId: string, now: Date = new Date()): Promise<WebhookDelivery[]> {
    if (!isUuid(eventId)) return [];
    const s = this.#s;
    return inTransaction(this.#pool, async (db) => {
      const { rows: found } = await db.query(`SELECT event_type FROM ${s}.outbox_event WHERE id = $1`, [eventId]);
      if (found[0] === undefined) return [];
      await db.query(`UPDATE ${s}.webhook_delivery SET ${REDELIVER_SET} WHERE event_id = $1`, [eventId, now]);
      await db.query(
        `INSERT INTO ${s}.webhook_delivery (id, event_id, endpoint_id, event_type, status, attempts, next_attempt_at, attempt_log, created_at, updated_at)
         SELECT gen_random_uuid(), e.id, w.id, e.event_type, 'pending', 0, $2::timestamptz, '[]', $2::timestamptz, $2::timestamptz
         FROM ${s}.outbox_event AS e JOIN ${s}.webhook_endpoint AS w ON w.is_active AND ${subscribesSql('w', 'e.event_type')}
         WHERE e.id = $1
         ON CONFLICT (event_id, endpoint_id) DO NOTHING`,
        [eventId, now],
      );
      await settleEvents(db, s, [eventId], now);
      await notifyRelays(db, this.#schemaName, eventId);
      const { rows } = await db.query(`SELECT * FROM ${s}.webhook_delivery WHERE event_id = $1 ORDER BY created_at, id`, [eventId]);
      return rows.map(toWebhookDelivery);
    });
  }

  async recoverEndpoint(endpointId: string, { since, now = new Date() }: { since: Date; now?: Date }): Promise<RecoveredEndpoint | undefined> {
    if (!isUuid(endpointId)) return undefined;
    const s = this.#s;
    return inTransaction(this.#pool, async (db) => {
      const { rows: requeued } = await db.query<{ event_id: string }>(
        `UPDATE ${s}.webhook_delivery SET ${REDELIVER_SET}
         WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $3
         RETURNING event_id`,
        [endpointId, now, since],
      );
      const { rows } = await db.query(
        `UPDATE ${s}.webhook_endpoint SET is_active = true, disabled_at = NULL, disabled_reason = NULL, failing_since = NULL
         WHERE id = $1 RETURNING *`,
        [endpointId],
      );
      if (rows[0] === undefined) return undefined;
      await settleEvents(db, s, requeued.map((r) => String(r.event_id)), now);
      if (requeued.length > 0) await notifyRelays(db, this.#schemaName, endpointId);
      return { endpoint: this.#endpoint(rows[0]), requeued: requeued.length };
    });
  }

  async deleteDeliveredEvents(before: Date): Promise<number> {
    const { rowCount } = await this.#pool.query(`DELETE FROM ${this.#s}.outbox_event WHERE status = 'delivered' AND delivered_at < $1`, [before]);
    return rowCount ?? 0;
  }

  async createWebhookEndpoint(endpoint: NewWebhookEndpoint): Promise<WebhookEndpoint> {
    const secret = await checkNewWebhookEndpoint(endpoint, this.#guard);
    const id = randomUUID();
    const { rows } = await this.#pool.query(
      `INSERT INTO ${this.#s}.webhook_endpoint (id, url, secret, event_types, is_active, created_at)
       VALUES ($1, $2, $3, $4, $5, clock_timestamp()) RETURNING *`,
      [id, endpoint.url, this.#secrets.seal(secret, id), endpoint.eventTypes ?? [], endpoint.isActive ?? true],
    );
    return this.#endpoint(rows[0] as Row);
  }

  async getWebhookEndpoint(id: string): Promise<WebhookEndpoint | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#s}.webhook_endpoint WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : this.#endpoint(rows[0]);
  }

  async listWebhookEndpoints(): Promise<WebhookEndpoint[]> {
    const { rows } = await this.#pool.query(`SELECT * FROM ${this.#s}.webhook_endpoint ORDER BY created_at, id`);
    return rows.map((row) => this.#endpoint(row));
  }

  async setWebhookEndpointActive(id: string, isActive: boolean): Promise<WebhookEndpoint | undefined> {
    if (!isUuid(id)) return undefined;
    const cleared = isActive ? ', disabled_at = NULL, disabled_reason = NULL' : '';
    const { rows } = await this.#pool.query(`UPDATE ${this.#s}.webhook_endpoint SET is_active = $2${cleared} WHERE id = $1 RETURNING *`, [id, isActive]);
    return rows[0] === undefined ? undefined : this.#endpoint(rows[0]);
  }

  async rotateWebhookSecret(id: string, options?: RotateSecretOptions): Promise<WebhookEndpoint | undefined> {
    const rotation = validateRotation(options);
    if (!isUuid(id)) return undefined;
    // The old value moves over as stored (sealed, when the store seals): it is never opened here.
    const { rows } = await this.#pool.query(
      `UPDATE ${this.#s}.webhook_endpoint SET previous_secret = secret, secret = $2, previous_secret_expires_at = $3 WHERE id = $1 RETURNING *`,
      [id, this.#secrets.seal(rotation.secret, id), rotation.previousSecretExpiresAt],
    );
    return rows[0] === undefined ? undefined : this.#endpoint(rows[0]);
  }

  async deleteWebhookEndpoint(id: string): Promise<void> {
    if (!isUuid(id)) return;
    const s = this.#s;
    await inTransaction(this.#pool, async (db) => {
      // Its deliveries first (the lock order), then the endpoint locked against new ones, then
      // those emitted meanwhile; every event they belonged to is settled without them.
      const gone = async (q: Queryable) => {
        const { rows } = await q.query<{ event_id: string }>(
          `WITH d AS (DELETE FROM ${s}.webhook_delivery WHERE endpoint_id = $1 RETURNING event_id) SELECT DISTINCT event_id FROM d`,
          [id],
        );
        return rows.map((r) => String(r.event_id));
      };
      const events = await gone(db);
      const { rows } = await db.query(`SELECT 1 FROM ${s}.webhook_endpoint WHERE id = $1 FOR UPDATE`, [id]);
      if (rows.length === 0) return;
      events.push(...(await gone(db)));
      await db.query(`DELETE FROM ${s}.webhook_endpoint WHERE id = $1`, [id]);
      await settleEvents(db, s, events, new Date());
    });
  }

  /** The NOTIFY channel and payload prefix of this schema, as `$n` values. */
  #notice(): [string, string] {
    return [OUTBOX_CHANNEL, `${this.#schemaName}:`];
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
