/**
 * Outbox events and their deliveries in the in-memory store: emitting (with a delivery per
 * subscribed endpoint) and an event's status over its deliveries. Shared by the emitter and the
 * relay's operations.
 */
import { randomUUID } from 'node:crypto';
import type { OutboxDelivery, OutboxEvent, WebhookDelivery } from '../model.js';
import { defaultIdempotencyKey, endpointSubscribes, type EmitResult, type NewOutboxEvent } from '../ports.js';
import { copy, eventKey, without, type Workspace } from './state.js';

/** The event as emitters see it, without the delivery state. */
export function eventOf(delivery: OutboxDelivery): OutboxEvent {
  const { id, aggregateType, aggregateId, eventType, payload, idempotencyKey, createdAt } = copy(delivery);
  return { id, aggregateType, aggregateId, eventType, payload, idempotencyKey, createdAt };
}

/** The deliveries of an event, in creation order. */
export function deliveriesOf({ state }: Workspace, eventId: string): WebhookDelivery[] {
  const found: WebhookDelivery[] = [];
  for (const id of state.deliveryIds.get(eventId) ?? []) {
    const delivery = state.deliveries.get(id);
    if (delivery !== undefined) found.push(delivery);
  }
  return found;
}

/** Add a pending delivery of `event` to `endpointId`, due at `now`. */
export function addDelivery({ state, journal }: Workspace, event: OutboxDelivery, endpointId: string, now: Date): void {
  const delivery: WebhookDelivery = {
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
  journal.set(state.deliveries, delivery.id, delivery);
  journal.set(state.deliveryIds, event.id, [...(state.deliveryIds.get(event.id) ?? []), delivery.id]);
}

/** Delete a delivery (an endpoint or its event is gone). */
export function deleteDelivery({ state, journal }: Workspace, delivery: WebhookDelivery): void {
  journal.delete(state.deliveries, delivery.id, { keepOrder: true });
  const rest = (state.deliveryIds.get(delivery.eventId) ?? []).filter((id) => id !== delivery.id);
  if (rest.length > 0) journal.set(state.deliveryIds, delivery.eventId, rest);
  else journal.delete(state.deliveryIds, delivery.eventId);
}

/** Add the event and, with it, a delivery for every active endpoint that subscribes to it. Costs what the endpoints are, not the events. */
export function emitEvent(workspace: Workspace, input: NewOutboxEvent): EmitResult {
  const { state, journal } = workspace;
  const idempotencyKey = input.idempotencyKey ?? defaultIdempotencyKey(input);
  const key = eventKey(input.eventType, idempotencyKey);
  const existing = state.eventIds.get(key);
  if (existing !== undefined) return { event: eventOf(state.events.get(existing) as OutboxDelivery), duplicate: true };
  const now = new Date();
  const pending: OutboxDelivery = {
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
  const targets = [...state.endpoints.values()].filter((e) => e.isActive && endpointSubscribes(e, pending.eventType));
  const event: OutboxDelivery = targets.length === 0 ? { ...pending, status: 'delivered', deliveredAt: now } : pending;
  journal.set(state.events, event.id, event);
  journal.set(state.eventIds, key, event.id);
  for (const endpoint of targets) addDelivery(workspace, event, endpoint.id, now);
  workspace.notify();
  return { event: eventOf(event), duplicate: false };
}

/** Give the event the status of its deliveries (see OutboxEventStatus). */
export function settleEvent(workspace: Workspace, eventId: string, now: Date): void {
  const event = workspace.state.events.get(eventId);
  if (event === undefined) return;
  const deliveries = deliveriesOf(workspace, eventId);
  const base = { ...without(event, 'errorMessage', 'deliveredAt'), updatedAt: now };
  const failed = deliveries.find((d) => d.status === 'failed');
  let settled: OutboxDelivery;
  if (deliveries.some((d) => d.status === 'pending')) settled = { ...base, status: 'pending' };
  else if (failed === undefined) settled = { ...base, status: 'delivered', deliveredAt: now };
  else settled = { ...base, status: 'failed', ...(failed.lastError === undefined ? {} : { errorMessage: failed.lastError }) };
  workspace.journal.set(workspace.state.events, eventId, settled);
}
