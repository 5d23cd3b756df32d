/**
 * The outbox relay: claim due events under a lease, POST each to the matching webhook
 * endpoints holding no lock, then record the outcome (delivered, retry with backoff, failed).
 * At-least-once: an outcome that is never recorded (a crash) means the event is claimed again
 * when its lease ends, and delivered again with the same `webhook-id` (and a new `webhook-timestamp`).
 */
import { StorageConfigError } from '../errors.js';
import type { OutboxDelivery, WebhookEndpoint } from '../upload/model.js';
import type { DeliveryOutcome, OutboxStore } from '../upload/ports.js';
import { retryDelayMs } from './backoff.js';
import { postToEndpoint, type EndpointResult, type FetchLike } from './deliver.js';

export interface OutboxRelayOptions {
  /** Any upload store: `MemoryUploadStore`, `SqliteUploadStore`, `PostgresUploadStore`. */
  store: OutboxStore;
  /** @default globalThis.fetch (Node's own, whose connect timeout is 10 s) */
  fetch?: FetchLike;
  /**
   * Events claimed (and delivered concurrently) per round.
   * @default 20
   */
  batchSize?: number;
  /**
   * How often `start()` looks for due events when nothing woke it. Postgres wakes the relay
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
   * How long a claim keeps an event from other relays. Must exceed `timeoutMs`: a relay that
   * stops before recording an outcome delays that event's redelivery by up to this much.
   * @default 300000 (5 minutes)
   */
  leaseMs?: number;
  /**
   * Aborting it stops the relay as a crash would: deliveries in flight are cut and their
   * outcomes are not recorded, so those events are delivered again after their lease.
   * For a graceful stop, call `stop()`.
   */
  signal?: AbortSignal;
  /**
   * The clock: when events are due, and each attempt's `webhook-timestamp`.
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

/** What happened to one claimed event. */
export interface DeliveryReport {
  event: OutboxDelivery;
  /** `lost`: the lease ran out and another relay took the event; nothing was recorded. */
  outcome: DeliveryOutcome['status'] | 'lost';
  /** Per matching endpoint; empty when none matched (then the event counts as delivered). */
  endpoints: EndpointResult[];
  /** When the next attempt is due (`pending` only). */
  nextAttemptAt?: Date;
}

/** Counts of one `runOnce()`. */
export interface RelayRunResult {
  claimed: number;
  delivered: number;
  /** Failed this time, to be retried later. */
  retried: number;
  /** Failed for good: `max_attempts` reached. */
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

const matches = (endpoint: WebhookEndpoint, eventType: string) =>
  endpoint.isActive && (endpoint.eventTypes.length === 0 || endpoint.eventTypes.includes(eventType));

/**
 * Delivers outbox events to webhook endpoints.
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
  readonly #now: () => Date;
  readonly #random: () => number;
  readonly #legacySignatureHeaders: boolean;
  readonly #onDelivery: ((report: DeliveryReport) => void) | undefined;
  readonly #onError: (error: unknown) => void;
  /** Aborted by `options.signal`: a crash. */
  readonly #kill = new AbortController();
  #loop: Promise<void> | undefined;
  #stopping = false;
  #woken = false;
  #wake: (() => void) | undefined;

  constructor(options: OutboxRelayOptions) {
    this.#store = options.store;
    this.#fetch = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.#batchSize = positiveInteger(options.batchSize ?? 20, 'batchSize');
    this.#pollIntervalMs = positiveInteger(options.pollIntervalMs ?? 5000, 'pollIntervalMs');
    this.#timeoutMs = positiveInteger(options.timeoutMs ?? 30_000, 'timeoutMs');
    this.#leaseMs = positiveInteger(options.leaseMs ?? 300_000, 'leaseMs');
    if (this.#leaseMs <= this.#timeoutMs) {
      throw new StorageConfigError(
        `OutboxRelay option "leaseMs" (${this.#leaseMs}) must exceed "timeoutMs" (${this.#timeoutMs}), or another relay could take an event still being delivered.`,
        { option: 'leaseMs' },
      );
    }
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
        this.#wake?.();
      };
      if (signal.aborted) kill();
      else signal.addEventListener('abort', kill, { once: true });
    }
  }

  /** True between `start()` and the end of `stop()` (or an abort). */
  get running(): boolean {
    return this.#loop !== undefined;
  }

  /**
   * Claim one batch of due events, deliver them (all concurrently), then record every outcome
   * of the round at once.
   */
  async runOnce(): Promise<RelayRunResult> {
    const result: RelayRunResult = { claimed: 0, delivered: 0, retried: 0, failed: 0, abandoned: 0 };
    if (this.#kill.signal.aborted) return result;
    const now = this.#now();
    const events = await this.#store.claimEvents({ now, limit: this.#batchSize, leaseUntil: new Date(now.getTime() + this.#leaseMs) });
    result.claimed = events.length;
    if (events.length === 0) return result;
    const endpoints = await this.#store.listWebhookEndpoints();
    const deliveries = await Promise.all(events.map((event) => this.#deliver(event, endpoints)));
    // Killed: record nothing, exactly as if the process had died here.
    if (this.#kill.signal.aborted) {
      result.abandoned = events.length;
      return result;
    }
    const recordedAt = this.#now();
    const completed = deliveries.map((delivery) => ({ ...delivery, outcome: this.#outcomeOf(delivery.event, delivery.results, recordedAt) }));
    const recorded = await this.#store.completeEvents(
      completed.map(({ event, outcome }) => ({ claimed: event, outcome })),
      recordedAt,
    );
    for (const [index, { event, results, outcome }] of completed.entries()) {
      const report: DeliveryReport = {
        event,
        outcome: recorded[index] === true ? outcome.status : 'lost',
        endpoints: results,
        ...(recorded[index] === true && outcome.status === 'pending' ? { nextAttemptAt: outcome.nextAttemptAt } : {}),
      };
      if (report.outcome === 'pending') result.retried += 1;
      else if (report.outcome === 'lost') result.abandoned += 1;
      else result[report.outcome] += 1;
      this.#onDelivery?.(report);
    }
    return result;
  }

  /** POST one event to every matching endpoint; never throws. */
  async #deliver(event: OutboxDelivery, endpoints: WebhookEndpoint[]): Promise<{ event: OutboxDelivery; results: EndpointResult[] }> {
    const body = JSON.stringify(event.payload);
    const targets = endpoints.filter((endpoint) => matches(endpoint, event.eventType));
    // Signed when sent: a receiver measures its tolerance from this attempt, not the first.
    const sign = { timestamp: Math.floor(this.#now().getTime() / 1000), legacySignatureHeaders: this.#legacySignatureHeaders };
    const results = await Promise.all(
      targets.map((endpoint) => postToEndpoint(this.#fetch, endpoint, event, body, { timeoutMs: this.#timeoutMs, signal: this.#kill.signal, ...sign })),
    );
    return { event, results };
  }

  /** Delivered when every endpoint answered 2xx (or none matched); else a retry, or failed after the last attempt. */
  #outcomeOf(event: OutboxDelivery, results: EndpointResult[], now: Date): DeliveryOutcome {
    const failures = results.filter((r) => !r.ok);
    if (failures.length === 0) return { status: 'delivered' };
    const errorMessage = failures.map((r) => `${r.url}: ${r.error ?? 'failed'}`).join('; ');
    if (event.attempts >= event.maxAttempts) return { status: 'failed', errorMessage };
    return { status: 'pending', errorMessage, nextAttemptAt: new Date(now.getTime() + retryDelayMs(event.attempts, this.#random)) };
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
      unsubscribe = await this.#store.onEventCommitted?.(() => {
        this.#woken = true;
        this.#wake?.();
      });
    } catch (error) {
      // No wake-ups (the LISTEN connection failed): polling still delivers.
      this.#onError(error);
    }
    try {
      while (!this.#stopping) {
        this.#woken = false;
        let full = false;
        try {
          full = (await this.runOnce()).claimed === this.#batchSize;
        } catch (error) {
          this.#onError(error);
        }
        if (!full && !this.#stopping && !this.#woken) await this.#sleep();
      }
    } finally {
      await unsubscribe?.().catch((error: unknown) => this.#onError(error));
    }
  }

  #sleep(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#pollIntervalMs);
      this.#wake = done;
    });
  }

  /** Stop after the round in progress has delivered and recorded its outcomes. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
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
