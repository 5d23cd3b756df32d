/**
 * The outbox relay: claim due deliveries (one event to one endpoint each) under a lease, POST
 * them holding no lock, then record every outcome of the round at once: delivered, a retry on
 * the schedule, or a dead letter. Endpoint health rides along: 410 Gone, or failing without a
 * success for too long, disables the endpoint; exhausted deliveries and disabled endpoints are
 * announced as `webhook.*` notices in the same transaction as the outcome.
 * At-least-once: an outcome that is never recorded (a crash) means the delivery is claimed again
 * when its lease ends, and sent again with the same `webhook-id` (and a new `webhook-timestamp`).
 */
import { setMaxListeners } from 'node:events';
import { StorageConfigError } from '../errors.js';
import type { WebhookDelivery } from '../upload/model.js';
import { NOTICE_EVENT_PREFIX, LEASE_EXPIRED_MESSAGE, type ClaimedDelivery, type CompletedDelivery, type NewOutboxEvent, type OutboxStore } from '../upload/ports.js';
import { DEFAULT_RETRY_DELAYS_MS, MAX_RETRY_AFTER_MS, RETRY_JITTER, retryDelayMs } from './backoff.js';
import { postToEndpoint, printableUrl, type EndpointResult, type FetchLike } from './deliver.js';
import { createWebhookFetch } from './webhook-fetch.js';

/** The notice of a delivery whose schedule ran out. */
export const DELIVERY_EXHAUSTED_EVENT = 'webhook.delivery_exhausted';
/** The notice of an endpoint the relay disabled. */
export const ENDPOINT_DISABLED_EVENT = 'webhook.endpoint_disabled';

export interface OutboxRelayOptions {
  /** Any upload store: `MemoryUploadStore`, `SqliteUploadStore`, `PostgresUploadStore`. */
  store: OutboxStore;
  /**
   * How POSTs are sent. The default keeps connections alive and applies the destination guard
   * (see `allowPrivateNetworks`); a `fetch` of your own replaces both.
   * @default createWebhookFetch({ allowPrivateNetworks })
   */
  fetch?: FetchLike;
  /**
   * Also deliver to loopback, private, link-local and other non-public addresses. Off, the relay
   * refuses them on the address it actually connects to (so DNS cannot rebind around it); the
   * attempt fails with `destination refused: …`. Turn it on for development and trusted
   * networks (a receiver on localhost); keep it off where tenants register endpoint URLs.
   * @default false
   */
  allowPrivateNetworks?: boolean;
  /**
   * Deliveries claimed (and sent concurrently) per round.
   * @default 20
   */
  batchSize?: number;
  /**
   * Rounds `start()` keeps in flight at once, each claiming up to `batchSize`: while one round's
   * POSTs are out, another claims or records, so the store's round trips overlap the receivers'.
   * Up to `concurrency × batchSize` POSTs are in flight.
   * @default 1
   * @example { batchSize: 10, concurrency: 2 } // 20 POSTs in flight, the store never idle
   */
  concurrency?: number;
  /**
   * The waits before the 2nd, 3rd, … attempt of a delivery, in ms; after the last, it is a dead
   * letter (`failed`, announced by a `webhook.delivery_exhausted` notice).
   * @default [5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h]: 8 attempts over about 27.6 hours
   * @example retryDelaysMs: [1000, 60_000] // 3 attempts in a minute, for tests
   */
  retryDelaysMs?: readonly number[];
  /**
   * Up to this fraction of each wait is added at random, so that retries of many deliveries spread.
   * @default 0.1
   */
  retryJitter?: number;
  /**
   * A `429` or `503` answer's `Retry-After` is honoured up to this long: the next attempt waits
   * the longer of it and the schedule's wait.
   * @default 86400000 (a day)
   */
  maxRetryAfterMs?: number;
  /**
   * An endpoint whose attempts have failed for this long without a success is disabled (as is one
   * that answers `410 Gone`): its pending deliveries become dead letters, and a
   * `webhook.endpoint_disabled` notice is emitted. `recoverEndpoint()` turns it back on.
   * @default 432000000 (5 days)
   */
  disableAfterFailingMs?: number;
  /**
   * How often `start()` looks for due deliveries when nothing woke it. Postgres wakes the relay
   * with LISTEN/NOTIFY as soon as an event commits; polling is the safety net (and what finds
   * retries that became due).
   * @default 5000
   */
  pollIntervalMs?: number;
  /**
   * Cut off one POST after this long in all (connecting, sending, waiting for the answer).
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * How long a claim keeps a delivery from other relays. Must exceed `timeoutMs`: a relay that
   * stops before recording an outcome delays that delivery's next attempt by up to this much.
   * @default 300000 (5 minutes)
   */
  leaseMs?: number;
  /**
   * Aborting it stops the relay as a crash would: deliveries in flight are cut and their
   * outcomes are not recorded, so they are sent again after their lease.
   * For a graceful stop, call `stop()`.
   */
  signal?: AbortSignal;
  /**
   * The clock: when deliveries are due, and each attempt's `webhook-timestamp`.
   * @default () => new Date()
   */
  now?: () => Date;
  /**
   * Also send the headers of earlier versions: `x-webhook-delivery` (the event id, as
   * `webhook-id`) and `x-webhook-signature` (hex HMAC-SHA256 of the body alone, which a captured
   * delivery replays forever), for receivers not yet moved to `webhook-signature`.
   * @deprecated for the move to Standard Webhooks only; removed in the next minor release.
   * @default false
   */
  legacySignatureHeaders?: boolean;
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number;
  /** Told of every recorded (or lost) outcome, e.g. for logs and metrics. */
  onDelivery?: (report: DeliveryReport) => void;
  /**
   * Errors of the background loop (the store unreachable, …); the loop keeps going.
   * @default logs the message with console.error
   */
  onError?: (error: unknown) => void;
}

/** What happened to one claimed delivery. */
export interface DeliveryReport {
  /** The delivery as claimed (`attempts` counts this attempt). */
  delivery: WebhookDelivery;
  /**
   * `pending`: to be retried at `nextAttemptAt`. `failed`: a dead letter. `lost`: the lease ran
   * out and another relay took the delivery, or the relay was killed; nothing was recorded.
   */
  outcome: 'delivered' | 'pending' | 'failed' | 'lost';
  /** What the endpoint answered; absent when nothing was sent (the endpoint was inactive, or the schedule had run out). */
  result?: EndpointResult;
  /** When the next attempt is due (`pending` only). */
  nextAttemptAt?: Date;
  /** Why it failed for good (`failed` only). */
  errorMessage?: string;
  /** Set when this outcome disabled the endpoint. */
  disabledEndpoint?: { reason: string };
}

/** Counts of one `runOnce()`, in deliveries. */
export interface RelayRunResult {
  claimed: number;
  delivered: number;
  /** Failed this time, to be retried later. */
  retried: number;
  /** Dead letters: the schedule ran out, or the endpoint is inactive or was disabled. */
  failed: number;
  /** Outcomes not recorded: the lease was lost, or the relay was aborted. */
  abandoned: number;
}

const positiveInteger = (value: number, option: string): number => {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new StorageConfigError(`OutboxRelay option "${option}" must be a positive integer (got ${String(value)}).`, { option });
  }
  return value;
};

function retryDelays(value: readonly number[] | undefined): readonly number[] {
  if (value === undefined) return DEFAULT_RETRY_DELAYS_MS;
  if (!Array.isArray(value) || value.some((ms) => !Number.isSafeInteger(ms) || ms < 0)) {
    throw new StorageConfigError('OutboxRelay option "retryDelaysMs" must be a list of waits in whole milliseconds ≥ 0 (e.g. [5000, 300000]); [] means a single attempt.', {
      option: 'retryDelaysMs',
    });
  }
  return Object.freeze([...value]);
}

function fraction(value: number, option: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new StorageConfigError(`OutboxRelay option "${option}" must be a number from 0 to 1 (got ${String(value)}).`, { option });
  }
  return value;
}

/** One claimed delivery after its attempt (or after deciding not to send it). */
interface Attempted {
  claimed: ClaimedDelivery;
  /** Absent when nothing was sent. */
  result?: EndpointResult;
  /** When the attempt started. */
  at: Date;
  /** Why nothing was sent. */
  skipped?: string;
}

/**
 * Delivers outbox events to webhook endpoints, each endpoint on its own schedule.
 *
 * @example
 * const relay = new OutboxRelay({ store })
 * relay.start()
 * process.on('SIGTERM', () => relay.stop())
 */
export class OutboxRelay {
  readonly #store: OutboxStore;
  readonly #fetch: FetchLike;
  readonly #batchSize: number;
  readonly #pollIntervalMs: number;
  readonly #timeoutMs: number;
  readonly #leaseMs: number;
  readonly #retryDelaysMs: readonly number[];
  readonly #retryJitter: number;
  readonly #maxRetryAfterMs: number;
  readonly #disableAfterFailingMs: number;
  readonly #now: () => Date;
  readonly #random: () => number;
  readonly #legacySignatureHeaders: boolean;
  readonly #onDelivery: ((report: DeliveryReport) => void) | undefined;
  readonly #onError: (error: unknown) => void;
  /** Aborted by `options.signal`: a crash. */
  readonly #kill = new AbortController();
  #loop: Promise<void> | undefined;
  #stopping = false;
  /** Counts wake-ups, so a worker that was woken during its round does not go to sleep after it. */
  #wakes = 0;
  readonly #sleepers = new Set<() => void>();
  readonly #concurrency: number;

  constructor(options: OutboxRelayOptions) {
    this.#store = options.store;
    this.#fetch = options.fetch ?? createWebhookFetch({ allowPrivateNetworks: options.allowPrivateNetworks === true });
    this.#batchSize = positiveInteger(options.batchSize ?? 20, 'batchSize');
    this.#concurrency = positiveInteger(options.concurrency ?? 1, 'concurrency');
    this.#pollIntervalMs = positiveInteger(options.pollIntervalMs ?? 5000, 'pollIntervalMs');
    this.#timeoutMs = positiveInteger(options.timeoutMs ?? 30_000, 'timeoutMs');
    this.#leaseMs = positiveInteger(options.leaseMs ?? 300_000, 'leaseMs');
    if (this.#leaseMs <= this.#timeoutMs) {
      throw new StorageConfigError(
        `OutboxRelay option "leaseMs" (${this.#leaseMs}) must exceed "timeoutMs" (${this.#timeoutMs}), or another relay could take a delivery still being sent.`,
        { option: 'leaseMs' },
      );
    }
    this.#retryDelaysMs = retryDelays(options.retryDelaysMs);
    this.#retryJitter = fraction(options.retryJitter ?? RETRY_JITTER, 'retryJitter');
    this.#maxRetryAfterMs = positiveInteger(options.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS, 'maxRetryAfterMs');
    this.#disableAfterFailingMs = positiveInteger(options.disableAfterFailingMs ?? 5 * 86_400_000, 'disableAfterFailingMs');
    this.#now = options.now ?? (() => new Date());
    this.#random = options.random ?? Math.random;
    this.#legacySignatureHeaders = options.legacySignatureHeaders === true;
    this.#onDelivery = options.onDelivery;
    this.#onError = options.onError ?? ((error) => console.error(`[doorito-storage] outbox relay: ${error instanceof Error ? error.message : String(error)}`));
    const signal = options.signal;
    if (signal !== undefined) {
      const kill = () => {
        this.#kill.abort(signal.reason);
        this.#stopping = true;
        this.#wakeAll();
      };
      if (signal.aborted) kill();
      else signal.addEventListener('abort', kill, { once: true });
    }
  }

  /** True between `start()` and the end of `stop()` (or an abort). */
  get running(): boolean {
    return this.#loop !== undefined;
  }

  /** Attempts a delivery gets: the first, then one per retry wait. */
  get maxAttempts(): number {
    return this.#retryDelaysMs.length + 1;
  }

  /**
   * Claim one batch of due deliveries, send them (all concurrently), then record every outcome
   * of the round at once.
   */
  async runOnce(): Promise<RelayRunResult> {
    const result: RelayRunResult = { claimed: 0, delivered: 0, retried: 0, failed: 0, abandoned: 0 };
    if (this.#kill.signal.aborted) return result;
    const now = this.#now();
    const claimed = await this.#store.claimDeliveries({ now, limit: this.#batchSize, leaseUntil: new Date(now.getTime() + this.#leaseMs) });
    result.claimed = claimed.length;
    if (claimed.length === 0) return result;
    // The round's POSTs start together, so one timeout (with the kill switch) bounds them all.
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = AbortSignal.any([this.#kill.signal, timeout]);
    // One listener per POST of the round (and its timeout's): not a leak.
    setMaxListeners(claimed.length + 10, signal, timeout);
    const attempted = await Promise.all(claimed.map((c) => this.#attempt(c, signal, timeout)));
    // Killed: record nothing, exactly as if the process had died here.
    if (this.#kill.signal.aborted) {
      result.abandoned = claimed.length;
      return result;
    }
    const recordedAt = this.#now();
    const completed = attempted.map((a) => this.#complete(a, recordedAt));
    const recorded = await this.#store.completeDeliveries(completed, recordedAt);
    for (const [index, item] of completed.entries()) {
      const { claimed: c, result: sent } = attempted[index] as Attempted;
      const outcome = recorded[index] === true ? item.outcome : undefined;
      const report: DeliveryReport = { delivery: c.delivery, outcome: outcome?.status ?? 'lost' };
      if (sent !== undefined) report.result = sent;
      if (outcome?.status === 'pending') report.nextAttemptAt = outcome.nextAttemptAt;
      if (outcome?.status === 'failed') report.errorMessage = outcome.errorMessage;
      if (outcome !== undefined && item.disableEndpoint !== undefined) report.disabledEndpoint = item.disableEndpoint;
      if (report.outcome === 'pending') result.retried += 1;
      else if (report.outcome === 'lost') result.abandoned += 1;
      else result[report.outcome] += 1;
      this.#onDelivery?.(report);
    }
    return result;
  }

  /** POST one claimed delivery, unless its endpoint is inactive or its schedule ran out; never throws. */
  async #attempt(claimed: ClaimedDelivery, signal: AbortSignal, timeout: AbortSignal): Promise<Attempted> {
    const at = this.#now();
    // Claimed once more than allowed: the last attempt's relay died before it reported.
    if (claimed.delivery.attempts > this.maxAttempts) return { claimed, at, skipped: LEASE_EXPIRED_MESSAGE };
    if (!claimed.endpoint.isActive) return { claimed, at, skipped: claimed.endpoint.disabledAt === undefined ? 'endpoint inactive' : `endpoint disabled: ${claimed.endpoint.disabledReason ?? ''}` };
    const body = JSON.stringify(claimed.event.payload);
    // Signed when sent: a receiver measures its tolerance from this attempt, not the first.
    const result = await postToEndpoint(this.#fetch, claimed.endpoint, claimed.event, body, {
      timeoutMs: this.#timeoutMs,
      signal,
      timedOut: timeout,
      now: at,
      timestamp: Math.floor(at.getTime() / 1000),
      legacySignatureHeaders: this.#legacySignatureHeaders,
    });
    return { claimed, at, result };
  }

  /** The outcome to record for one attempt, with endpoint health and the notices it calls for. */
  #complete({ claimed, result, at, skipped }: Attempted, now: Date): CompletedDelivery {
    const { delivery, endpoint, event } = claimed;
    const item: CompletedDelivery = { claimed: delivery, outcome: { status: 'delivered' } };
    const notices = !event.eventType.startsWith(NOTICE_EVENT_PREFIX);
    if (result === undefined) {
      const errorMessage = skipped ?? 'not sent';
      item.outcome = { status: 'failed', errorMessage };
      if (errorMessage === LEASE_EXPIRED_MESSAGE && notices) item.emit = [this.#exhaustedNotice(claimed, errorMessage, now)];
      return item;
    }
    item.attempt = { at, durationMs: result.durationMs, ...(result.status === undefined ? {} : { status: result.status }), ...(result.error === undefined ? {} : { error: result.error }) };
    if (result.ok) {
      item.health = 'success';
      return item;
    }
    item.health = 'failure';
    const errorMessage = result.error ?? 'failed';
    const failingSince = endpoint.failingSince ?? at;
    const disable =
      result.status === 410
        ? 'HTTP 410 Gone'
        : now.getTime() - failingSince.getTime() >= this.#disableAfterFailingMs
          ? `failing without a success since ${failingSince.toISOString()}`
          : undefined;
    if (disable !== undefined) {
      item.outcome = { status: 'failed', errorMessage };
      item.disableEndpoint = { reason: disable };
      item.emit = [this.#disabledNotice(claimed, disable, failingSince, now)];
      return item;
    }
    if (delivery.attempts >= this.maxAttempts) {
      item.outcome = { status: 'failed', errorMessage };
      if (notices) item.emit = [this.#exhaustedNotice(claimed, errorMessage, now, result.status)];
      return item;
    }
    const scheduled = retryDelayMs(delivery.attempts, this.#random, this.#retryDelaysMs, this.#retryJitter);
    const asked = result.retryAfterMs === undefined ? 0 : Math.min(result.retryAfterMs, this.#maxRetryAfterMs);
    item.outcome = { status: 'pending', errorMessage, nextAttemptAt: new Date(now.getTime() + Math.max(scheduled, asked)) };
    return item;
  }

  #exhaustedNotice({ delivery, endpoint, event }: ClaimedDelivery, lastError: string, now: Date, lastStatus?: number): NewOutboxEvent {
    return {
      aggregateType: 'WebhookDelivery',
      aggregateId: delivery.id,
      eventType: DELIVERY_EXHAUSTED_EVENT,
      // One notice per exhaustion: a redelivered delivery that runs out again is announced again.
      idempotencyKey: `${delivery.id}:${delivery.createdAt.toISOString()}:${now.toISOString()}`,
      payload: {
        delivery_id: delivery.id,
        event_id: event.id,
        event_type: event.eventType,
        endpoint_id: endpoint.id,
        endpoint_url: printableUrl(endpoint.url),
        attempts: delivery.attempts,
        ...(lastStatus === undefined ? {} : { last_status: lastStatus }),
        last_error: lastError,
        exhausted_at: now.toISOString(),
      },
    };
  }

  #disabledNotice({ endpoint }: ClaimedDelivery, reason: string, failingSince: Date, now: Date): NewOutboxEvent {
    return {
      aggregateType: 'WebhookEndpoint',
      aggregateId: endpoint.id,
      eventType: ENDPOINT_DISABLED_EVENT,
      // Relays that disable the same endpoint at once announce it once: the store disables it once.
      idempotencyKey: `${endpoint.id}:${failingSince.toISOString()}`,
      payload: { endpoint_id: endpoint.id, endpoint_url: printableUrl(endpoint.url), reason, failing_since: failingSince.toISOString(), disabled_at: now.toISOString() },
    };
  }

  /**
   * Run in the background until `stop()` (or the signal aborts): a round right away, then
   * again when an event is committed (where the store can tell), after `pollIntervalMs`, or at
   * once when the last round was full. Calling it again while running does nothing.
   */
  start(): void {
    if (this.#loop !== undefined || this.#kill.signal.aborted) return;
    this.#stopping = false;
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
    });
  }

  async #run(): Promise<void> {
    let unsubscribe: (() => Promise<void>) | undefined;
    try {
      unsubscribe = await this.#store.onEventCommitted?.(() => this.#wakeAll());
    } catch (error) {
      // No wake-ups (the LISTEN connection failed): polling still delivers.
      this.#onError(error);
    }
    try {
      await Promise.all(Array.from({ length: this.#concurrency }, () => this.#work()));
    } finally {
      await unsubscribe?.().catch((error: unknown) => this.#onError(error));
    }
  }

  /** One of `concurrency` loops of rounds: each claims its own batch, so their rounds overlap. */
  async #work(): Promise<void> {
    while (!this.#stopping) {
      const wakes = this.#wakes;
      let full = false;
      try {
        full = (await this.runOnce()).claimed === this.#batchSize;
      } catch (error) {
        this.#onError(error);
      }
      if (!full && !this.#stopping && this.#wakes === wakes) await this.#sleep();
    }
  }

  #wakeAll(): void {
    this.#wakes += 1;
    for (const wake of [...this.#sleepers]) wake();
  }

  #sleep(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, this.#pollIntervalMs);
      this.#sleepers.add(done);
    });
  }

  /** Stop after the round in progress has delivered and recorded its outcomes. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wakeAll();
    await this.#loop;
  }

  /**
   * Delete delivered events older than `retentionHours`; pending and failed events stay.
   * Returns how many were deleted.
   */
  async cleanupDeliveredEvents(options: { retentionHours?: number } = {}): Promise<number> {
    const hours = options.retentionHours ?? 168;
    if (!Number.isFinite(hours) || hours < 0) {
      throw new StorageConfigError(`cleanupDeliveredEvents option "retentionHours" must be a number ≥ 0 (got ${String(hours)}).`, {
        option: 'retentionHours',
      });
    }
    return this.#store.deleteDeliveredEvents(new Date(this.#now().getTime() - hours * 3600_000));
  }
}
