/**
 * The relay's side of the in-memory outbox: claims, outcomes, redelivery, endpoints. The
 * reference semantics of the OutboxStore port; `MemoryUploadStore` runs each operation under
 * its lock and journal, so one that throws changes nothing.
 */
import { randomUUID } from 'node:crypto';
import type { WebhookSecretBox } from '../../outbox/secret-box.js';
import { ATTEMPT_LOG_LIMIT, type OutboxDelivery, type WebhookDelivery, type WebhookEndpoint } from '../model.js';
import {
  endpointSubscribes,
  type ClaimedDelivery,
  type ClaimOptions,
  type CompletedDelivery,
  type DeliveryQuery,
  type NewWebhookEndpoint,
  type RecoveredEndpoint,
  type RotateSecretOptions,
} from '../ports.js';
import { validateRotation } from '../webhook-endpoint.js';
import { addDelivery, deleteDelivery, deliveriesOf, emitEvent, eventOf, settleEvent } from './events.js';
import { copy, eventKey, instant, without, type Workspace } from './state.js';

const newestFirst = (a: WebhookDelivery, b: WebhookDelivery) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** The OutboxStore operations over one workspace (the caller holds the lock). */
export class MemoryOutbox {
  readonly #workspace: () => Workspace;
  readonly #box: WebhookSecretBox;

  constructor(workspace: () => Workspace, box: WebhookSecretBox) {
    this.#workspace = workspace;
    this.#box = box;
  }

  #setDelivery(delivery: WebhookDelivery): void {
    const { state, journal } = this.#workspace();
    journal.set(state.deliveries, delivery.id, delivery);
  }

  #setEndpoint(endpoint: WebhookEndpoint): void {
    const { state, journal } = this.#workspace();
    journal.set(state.endpoints, endpoint.id, endpoint);
  }

  #open(endpoint: WebhookEndpoint): WebhookEndpoint {
    return this.#box.openEndpoint(copy(endpoint));
  }

  claimDeliveries({ now, limit, leaseUntil }: ClaimOptions): ClaimedDelivery[] {
    const { state } = this.#workspace();
    const due = [...state.deliveries.values()]
      .filter((d) => d.status === 'pending' && d.nextAttemptAt <= now)
      // Stable: deliveries due at the same instant keep their creation order.
      .sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime())
      .slice(0, limit);
    return due.map((delivery) => {
      const claimed: WebhookDelivery = { ...delivery, attempts: delivery.attempts + 1, nextAttemptAt: instant(leaseUntil), updatedAt: instant(now) };
      this.#setDelivery(claimed);
      const event = state.events.get(delivery.eventId) as OutboxDelivery;
      const endpoint = state.endpoints.get(delivery.endpointId) as WebhookEndpoint;
      return { delivery: copy(claimed), event: eventOf(event), endpoint: this.#open(endpoint) };
    });
  }

  completeDeliveries(items: ReadonlyArray<CompletedDelivery>, at: Date): boolean[] {
    const workspace = this.#workspace();
    const now = instant(at);
    const touched = new Set<string>();
    const recorded = items.map((item) => {
      const delivery = workspace.state.deliveries.get(item.claimed.id);
      if (delivery?.status !== 'pending' || delivery.nextAttemptAt.getTime() !== item.claimed.nextAttemptAt.getTime()) return false;
      this.#record(delivery, item, now);
      touched.add(delivery.eventId);
      return true;
    });
    // After the whole round is recorded, so a disable fails only the deliveries it did not attempt.
    for (const [index, item] of items.entries()) {
      if (recorded[index] !== true) continue;
      const delivery = workspace.state.deliveries.get(item.claimed.id) as WebhookDelivery;
      if (item.disableEndpoint !== undefined) this.#disable(delivery.endpointId, item.disableEndpoint.reason, now);
      for (const notice of item.emit ?? []) emitEvent(workspace, notice);
    }
    for (const eventId of touched) settleEvent(workspace, eventId, now);
    return recorded;
  }

  #disable(endpointId: string, reason: string, now: Date): void {
    const workspace = this.#workspace();
    const endpoint = workspace.state.endpoints.get(endpointId);
    if (endpoint?.isActive !== true) return;
    this.#setEndpoint({ ...endpoint, isActive: false, disabledAt: now, disabledReason: reason });
    for (const other of workspace.state.deliveries.values()) {
      if (other.endpointId !== endpointId || other.status !== 'pending') continue;
      this.#setDelivery({ ...other, status: 'failed', lastError: `endpoint disabled: ${reason}`, updatedAt: now });
      settleEvent(workspace, other.eventId, now);
    }
  }

  #record(delivery: WebhookDelivery, { outcome, attempt, health }: CompletedDelivery, now: Date): void {
    let next: WebhookDelivery =
      outcome.status === 'delivered'
        ? { ...without(delivery, 'lastError'), status: 'delivered', deliveredAt: now, updatedAt: now }
        : {
            ...delivery,
            status: outcome.status,
            lastError: outcome.errorMessage,
            ...(outcome.status === 'pending' ? { nextAttemptAt: instant(outcome.nextAttemptAt) } : {}),
            updatedAt: now,
          };
    if (attempt !== undefined) {
      next = {
        ...without(next, 'lastStatus'),
        attemptLog: [...next.attemptLog, copy(attempt)].slice(-ATTEMPT_LOG_LIMIT),
        lastDurationMs: attempt.durationMs,
        ...(attempt.status === undefined ? {} : { lastStatus: attempt.status }),
      };
    }
    this.#setDelivery(next);
    const endpoint = this.#workspace().state.endpoints.get(delivery.endpointId);
    if (endpoint !== undefined && health === 'success') this.#setEndpoint({ ...without(endpoint, 'failingSince'), lastSuccessAt: now });
    else if (endpoint !== undefined && health === 'failure' && endpoint.failingSince === undefined) this.#setEndpoint({ ...endpoint, failingSince: now });
  }

  getEvent(id: string): OutboxDelivery | undefined {
    return copy(this.#workspace().state.events.get(id));
  }

  getDelivery(id: string): WebhookDelivery | undefined {
    return copy(this.#workspace().state.deliveries.get(id));
  }

  listDeliveries(query: DeliveryQuery = {}): WebhookDelivery[] {
    const found = [...this.#workspace().state.deliveries.values()].filter(
      (d) =>
        (query.status === undefined || d.status === query.status) &&
        (query.endpointId === undefined || d.endpointId === query.endpointId) &&
        (query.eventId === undefined || d.eventId === query.eventId) &&
        (query.since === undefined || d.createdAt >= query.since),
    );
    return copy(found.sort(newestFirst).slice(0, query.limit ?? 100));
  }

  #requeue(delivery: WebhookDelivery, now: Date): void {
    this.#setDelivery({ ...without(delivery, 'deliveredAt'), status: 'pending', attempts: 0, nextAttemptAt: now, updatedAt: now });
  }

  redeliver(id: string, at?: Date): WebhookDelivery | undefined {
    const workspace = this.#workspace();
    const delivery = workspace.state.deliveries.get(id);
    if (delivery === undefined) return undefined;
    const now = instant(at);
    this.#requeue(delivery, now);
    settleEvent(workspace, delivery.eventId, now);
    workspace.notify();
    return copy(workspace.state.deliveries.get(id));
  }

  redeliverEvent(eventId: string, at?: Date): WebhookDelivery[] {
    const workspace = this.#workspace();
    const event = workspace.state.events.get(eventId);
    if (event === undefined) return [];
    const now = instant(at);
    const existing = deliveriesOf(workspace, eventId);
    for (const delivery of existing) this.#requeue(delivery, now);
    for (const endpoint of workspace.state.endpoints.values()) {
      if (!endpoint.isActive || !endpointSubscribes(endpoint, event.eventType) || existing.some((d) => d.endpointId === endpoint.id)) continue;
      addDelivery(workspace, event, endpoint.id, now);
    }
    settleEvent(workspace, eventId, now);
    workspace.notify();
    return copy(deliveriesOf(workspace, eventId));
  }

  recoverEndpoint(endpointId: string, options: { since: Date; now?: Date }): RecoveredEndpoint | undefined {
    const workspace = this.#workspace();
    const endpoint = workspace.state.endpoints.get(endpointId);
    if (endpoint === undefined) return undefined;
    const now = instant(options.now);
    const recovered: WebhookEndpoint = { ...without(endpoint, 'disabledAt', 'disabledReason', 'failingSince'), isActive: true };
    this.#setEndpoint(recovered);
    let requeued = 0;
    for (const delivery of workspace.state.deliveries.values()) {
      if (delivery.endpointId !== endpointId || delivery.status !== 'failed' || delivery.createdAt < options.since) continue;
      this.#requeue(delivery, now);
      settleEvent(workspace, delivery.eventId, now);
      requeued += 1;
    }
    if (requeued > 0) workspace.notify();
    return { endpoint: this.#open(recovered), requeued };
  }

  deleteDeliveredEvents(before: Date): number {
    const workspace = this.#workspace();
    const { state, journal } = workspace;
    const old = [...state.events.values()].filter((e) => e.status === 'delivered' && e.deliveredAt !== undefined && e.deliveredAt < before);
    for (const event of old) {
      for (const delivery of deliveriesOf(workspace, event.id)) deleteDelivery(workspace, delivery);
      journal.delete(state.events, event.id, { keepOrder: true });
      journal.delete(state.eventIds, eventKey(event.eventType, event.idempotencyKey));
    }
    return old.length;
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
    this.#setEndpoint(endpoint);
    return { ...copy(endpoint), secret };
  }

  getWebhookEndpoint(id: string): WebhookEndpoint | undefined {
    const endpoint = this.#workspace().state.endpoints.get(id);
    return endpoint === undefined ? undefined : this.#open(endpoint);
  }

  listWebhookEndpoints(): WebhookEndpoint[] {
    return [...this.#workspace().state.endpoints.values()].map((e) => this.#open(e));
  }

  setWebhookEndpointActive(id: string, isActive: boolean): WebhookEndpoint | undefined {
    const endpoint = this.#workspace().state.endpoints.get(id);
    if (endpoint === undefined) return undefined;
    const updated: WebhookEndpoint = isActive ? { ...without(endpoint, 'disabledAt', 'disabledReason'), isActive } : { ...endpoint, isActive };
    this.#setEndpoint(updated);
    return this.#open(updated);
  }

  rotateWebhookSecret(id: string, options?: RotateSecretOptions): WebhookEndpoint | undefined {
    const rotation = validateRotation(options);
    const endpoint = this.#workspace().state.endpoints.get(id);
    if (endpoint === undefined) return undefined;
    const rotated: WebhookEndpoint = {
      ...endpoint,
      previousSecret: endpoint.secret,
      previousSecretExpiresAt: rotation.previousSecretExpiresAt,
      secret: this.#box.seal(rotation.secret, id),
    };
    this.#setEndpoint(rotated);
    return this.#open(rotated);
  }

  deleteWebhookEndpoint(id: string, at?: Date): void {
    const workspace = this.#workspace();
    const now = instant(at);
    workspace.journal.delete(workspace.state.endpoints, id, { keepOrder: true });
    const events = new Set<string>();
    for (const delivery of [...workspace.state.deliveries.values()]) {
      if (delivery.endpointId !== id) continue;
      deleteDelivery(workspace, delivery);
      events.add(delivery.eventId);
    }
    for (const eventId of events) settleEvent(workspace, eventId, now);
  }
}
