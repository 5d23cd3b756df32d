/**
 * The outbox of the in-memory store: events, a delivery per (event, endpoint), endpoints. The
 * reference semantics of the OutboxStore port; `MemoryUploadStore` runs these functions under
 * its lock, on its state or on a transaction's draft of it.
 */
import { randomUUID } from 'node:crypto';
import type { WebhookSecretBox } from '../outbox/secret-box.js';
import { ATTEMPT_LOG_LIMIT, type OutboxDelivery, type OutboxEvent, type WebhookDelivery, type WebhookEndpoint } from './model.js';
import {
  defaultIdempotencyKey,
  endpointSubscribes,
  type ClaimedDelivery,
  type ClaimOptions,
  type CompletedDelivery,
  type DeliveryQuery,
  type EmitResult,
  type NewOutboxEvent,
  type NewWebhookEndpoint,
  type RecoveredEndpoint,
  type RotateSecretOptions,
} from './ports.js';
import { validateRotation } from './webhook-endpoint.js';

/** The outbox part of the memory store's state. Endpoints are kept as stored: secrets sealed when the store encrypts. */
export interface OutboxState {
  /** In emission order. */
  events: Map<string, OutboxDelivery>;
  /** In creation order. */
  deliveries: Map<string, WebhookDelivery>;
  endpoints: WebhookEndpoint[];
}

export const emptyOutboxState = (): OutboxState => ({ events: new Map(), deliveries: new Map(), endpoints: [] });

const copy = <T>(value: T): T => structuredClone(value);

/** The event as emitters see it, without the delivery state. */
export function eventOf(delivery: OutboxDelivery): OutboxEvent {
  const { id, aggregateType, aggregateId, eventType, payload, idempotencyKey, createdAt } = copy(delivery);
  return { id, aggregateType, aggregateId, eventType, payload, idempotencyKey, createdAt };
}

const newestFirst = (a: WebhookDelivery, b: WebhookDelivery) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

function newDelivery(event: OutboxDelivery, endpointId: string, now: Date): WebhookDelivery {
  return {
    id: randomUUID(),
    eventId: event.id,
    eventType: event.eventType,
    endpointId,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: now,
    attemptLog: [],
    createdAt: now,
    updatedAt: now,
  };
}

/** Add the event and, with it, a delivery for every active endpoint that subscribes to it. */
export function emitEvent(state: OutboxState, input: NewOutboxEvent): EmitResult {
  const idempotencyKey = input.idempotencyKey ?? defaultIdempotencyKey(input);
  for (const existing of state.events.values()) {
    if (existing.eventType === input.eventType && existing.idempotencyKey === idempotencyKey) return { event: eventOf(existing), duplicate: true };
  }
  const now = new Date();
  const event: OutboxDelivery = {
    id: randomUUID(),
    aggregateType: input.aggregateType,
    aggregateId: input.aggregateId,
    eventType: input.eventType,
    payload: copy(input.payload),
    idempotencyKey,
    createdAt: now,
    status: 'pending',
    updatedAt: now,
  };
  state.events.set(event.id, event);
  const targets = state.endpoints.filter((e) => e.isActive && endpointSubscribes(e, event.eventType));
  for (const endpoint of targets) {
    const delivery = newDelivery(event, endpoint.id, now);
    state.deliveries.set(delivery.id, delivery);
  }
  if (targets.length === 0) Object.assign(event, { status: 'delivered', deliveredAt: now });
  return { event: eventOf(event), duplicate: false };
}

/** The OutboxStore operations over one state (the caller holds the lock). */
export class MemoryOutbox {
  readonly #state: () => OutboxState;
  readonly #box: WebhookSecretBox;
  /** Called with the events added outside `emitEvent` (notices), so the store can wake relays. */
  readonly #emitted: () => void;

  constructor(state: () => OutboxState, box: WebhookSecretBox, emitted: () => void) {
    this.#state = state;
    this.#box = box;
    this.#emitted = emitted;
  }

  #deliveriesOf(eventId: string): WebhookDelivery[] {
    return [...this.#state().deliveries.values()].filter((d) => d.eventId === eventId);
  }

  /** The status of an event over its deliveries (see OutboxEventStatus). */
  #settle(eventId: string, now: Date): void {
    const event = this.#state().events.get(eventId);
    if (event === undefined) return;
    const deliveries = this.#deliveriesOf(eventId);
    const failed = deliveries.find((d) => d.status === 'failed');
    event.updatedAt = now;
    delete event.errorMessage;
    delete event.deliveredAt;
    if (deliveries.some((d) => d.status === 'pending')) event.status = 'pending';
    else if (failed !== undefined) {
      event.status = 'failed';
      if (failed.lastError !== undefined) event.errorMessage = failed.lastError;
    } else Object.assign(event, { status: 'delivered', deliveredAt: now });
  }

  #endpoint(id: string): WebhookEndpoint | undefined {
    return this.#state().endpoints.find((e) => e.id === id);
  }

  claimDeliveries({ now, limit, leaseUntil }: ClaimOptions): ClaimedDelivery[] {
    const state = this.#state();
    const due = [...state.deliveries.values()]
      .filter((d) => d.status === 'pending' && d.nextAttemptAt <= now)
      // Stable: deliveries due at the same instant keep their creation order.
      .sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime())
      .slice(0, limit);
    return due.map((delivery) => {
      Object.assign(delivery, { attempts: delivery.attempts + 1, nextAttemptAt: leaseUntil, updatedAt: now });
      const event = state.events.get(delivery.eventId) as OutboxDelivery;
      const endpoint = this.#endpoint(delivery.endpointId) as WebhookEndpoint;
      return { delivery: copy(delivery), event: eventOf(event), endpoint: this.#box.openEndpoint(copy(endpoint)) };
    });
  }

  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, now: Date): boolean[] {
    const touched = new Set<string>();
    const recorded = items.map((item) => {
      const delivery = this.#state().deliveries.get(item.claimed.id);
      if (delivery?.status !== 'pending' || delivery.nextAttemptAt.getTime() !== item.claimed.nextAttemptAt.getTime()) return false;
      this.#record(delivery, item, now);
      touched.add(delivery.eventId);
      return true;
    });
    // After the whole round is recorded, so a disable fails only the deliveries it did not attempt.
    for (const [index, item] of items.entries()) {
      if (recorded[index] !== true) continue;
      const delivery = this.#state().deliveries.get(item.claimed.id) as WebhookDelivery;
      if (item.disableEndpoint !== undefined) this.#disable(delivery.endpointId, item.disableEndpoint.reason, now);
      for (const notice of item.emit ?? []) {
        if (!emitEvent(this.#state(), notice).duplicate) this.#emitted();
      }
    }
    for (const eventId of touched) this.#settle(eventId, now);
    return recorded;
  }

  #disable(endpointId: string, reason: string, now: Date): void {
    const endpoint = this.#endpoint(endpointId);
    if (endpoint?.isActive !== true) return;
    Object.assign(endpoint, { isActive: false, disabledAt: now, disabledReason: reason });
    for (const other of this.#state().deliveries.values()) {
      if (other.endpointId !== endpoint.id || other.status !== 'pending') continue;
      Object.assign(other, { status: 'failed', lastError: `endpoint disabled: ${reason}`, updatedAt: now });
      this.#settle(other.eventId, now);
    }
  }

  #record(delivery: WebhookDelivery, { outcome, attempt, health }: CompletedDelivery, now: Date): void {
    delivery.status = outcome.status;
    delivery.updatedAt = now;
    if (outcome.status === 'delivered') {
      delivery.deliveredAt = now;
      delete delivery.lastError;
    } else {
      delivery.lastError = outcome.errorMessage;
      if (outcome.status === 'pending') delivery.nextAttemptAt = outcome.nextAttemptAt;
    }
    if (attempt !== undefined) {
      delivery.attemptLog = [...delivery.attemptLog, copy(attempt)].slice(-ATTEMPT_LOG_LIMIT);
      delivery.lastDurationMs = attempt.durationMs;
      if (attempt.status === undefined) delete delivery.lastStatus;
      else delivery.lastStatus = attempt.status;
    }
    const endpoint = this.#endpoint(delivery.endpointId);
    if (endpoint !== undefined && health === 'success') {
      endpoint.lastSuccessAt = now;
      delete endpoint.failingSince;
    } else if (endpoint !== undefined && health === 'failure') {
      endpoint.failingSince ??= now;
    }
  }

  getEvent(id: string): OutboxDelivery | undefined {
    return copy(this.#state().events.get(id));
  }

  getDelivery(id: string): WebhookDelivery | undefined {
    return copy(this.#state().deliveries.get(id));
  }

  listDeliveries(query: DeliveryQuery = {}): WebhookDelivery[] {
    const found = [...this.#state().deliveries.values()].filter(
      (d) =>
        (query.status === undefined || d.status === query.status) &&
        (query.endpointId === undefined || d.endpointId === query.endpointId) &&
        (query.eventId === undefined || d.eventId === query.eventId) &&
        (query.since === undefined || d.createdAt >= query.since),
    );
    return copy(found.sort(newestFirst).slice(0, query.limit ?? 100));
  }

  #requeue(delivery: WebhookDelivery, now: Date): void {
    Object.assign(delivery, { status: 'pending', attempts: 0, nextAttemptAt: now, updatedAt: now });
    delete delivery.deliveredAt;
  }

  redeliver(id: string, now = new Date()): WebhookDelivery | undefined {
    const delivery = this.#state().deliveries.get(id);
    if (delivery === undefined) return undefined;
    this.#requeue(delivery, now);
    this.#settle(delivery.eventId, now);
    this.#emitted();
    return copy(delivery);
  }

  redeliverEvent(eventId: string, now = new Date()): WebhookDelivery[] {
    const state = this.#state();
    const event = state.events.get(eventId);
    if (event === undefined) return [];
    const existing = this.#deliveriesOf(eventId);
    for (const delivery of existing) this.#requeue(delivery, now);
    for (const endpoint of state.endpoints) {
      if (!endpoint.isActive || !endpointSubscribes(endpoint, event.eventType) || existing.some((d) => d.endpointId === endpoint.id)) continue;
      const delivery = newDelivery(event, endpoint.id, now);
      state.deliveries.set(delivery.id, delivery);
    }
    this.#settle(eventId, now);
    this.#emitted();
    return copy(this.#deliveriesOf(eventId));
  }

  recoverEndpoint(endpointId: string, { since, now = new Date() }: { since: Date; now?: Date }): RecoveredEndpoint | undefined {
    const endpoint = this.#endpoint(endpointId);
    if (endpoint === undefined) return undefined;
    endpoint.isActive = true;
    delete endpoint.disabledAt;
    delete endpoint.disabledReason;
    delete endpoint.failingSince;
    let requeued = 0;
    for (const delivery of this.#state().deliveries.values()) {
      if (delivery.endpointId !== endpointId || delivery.status !== 'failed' || delivery.createdAt < since) continue;
      this.#requeue(delivery, now);
      this.#settle(delivery.eventId, now);
      requeued += 1;
    }
    if (requeued > 0) this.#emitted();
    return { endpoint: this.#box.openEndpoint(copy(endpoint)), requeued };
  }

  deleteDeliveredEvents(before: Date): number {
    const state = this.#state();
    let count = 0;
    for (const [id, event] of state.events) {
      if (event.status !== 'delivered' || event.deliveredAt === undefined || event.deliveredAt >= before) continue;
      state.events.delete(id);
      count += 1;
      for (const delivery of this.#deliveriesOf(id)) state.deliveries.delete(delivery.id);
    }
    return count;
  }

  /** `secret`: what `checkNewWebhookEndpoint(input)` returned. */
  createWebhookEndpoint(input: NewWebhookEndpoint, secret: string): WebhookEndpoint {
    const id = randomUUID();
    const endpoint: WebhookEndpoint = {
      id,
      url: input.url,
      secret: this.#box.seal(secret, id),
      eventTypes: [...(input.eventTypes ?? [])],
      isActive: input.isActive ?? true,
      createdAt: new Date(),
    };
    this.#state().endpoints.push(endpoint);
    return { ...copy(endpoint), secret };
  }

  getWebhookEndpoint(id: string): WebhookEndpoint | undefined {
    const endpoint = this.#endpoint(id);
    return endpoint === undefined ? undefined : this.#box.openEndpoint(copy(endpoint));
  }

  listWebhookEndpoints(): WebhookEndpoint[] {
    return this.#state().endpoints.map((e) => this.#box.openEndpoint(copy(e)));
  }

  setWebhookEndpointActive(id: string, isActive: boolean): WebhookEndpoint | undefined {
    const endpoint = this.#endpoint(id);
    if (endpoint === undefined) return undefined;
    endpoint.isActive = isActive;
    if (isActive) {
      delete endpoint.disabledAt;
      delete endpoint.disabledReason;
    }
    return this.#box.openEndpoint(copy(endpoint));
  }

  rotateWebhookSecret(id: string, options?: RotateSecretOptions): WebhookEndpoint | undefined {
    const rotation = validateRotation(options);
    const endpoint = this.#endpoint(id);
    if (endpoint === undefined) return undefined;
    Object.assign(endpoint, { previousSecret: endpoint.secret, previousSecretExpiresAt: rotation.previousSecretExpiresAt, secret: this.#box.seal(rotation.secret, id) });
    return this.#box.openEndpoint(copy(endpoint));
  }

  deleteWebhookEndpoint(id: string, now = new Date()): void {
    const state = this.#state();
    state.endpoints = state.endpoints.filter((e) => e.id !== id);
    const events = new Set<string>();
    for (const delivery of [...state.deliveries.values()]) {
      if (delivery.endpointId !== id) continue;
      state.deliveries.delete(delivery.id);
      events.add(delivery.eventId);
    }
    for (const eventId of events) this.#settle(eventId, now);
  }
}
