/**
 * The state of the in-memory store: records, and the indexes that make each operation cost
 * what it touches (the SQL stores' indexes and UNIQUE constraints). Records in these maps are
 * never changed in place: an operation stores a new object through the journal, so a rollback
 * can put the old one back.
 */
import type { OutboxDelivery, UploadBatch, UploadFile, WebhookDelivery, WebhookEndpoint } from '../model.js';
import type { Journal } from './journal.js';

export interface MemoryState {
  files: Map<string, UploadFile>;
  /** The non-empty storage key of every live file, to that file's id (the UNIQUE index of the SQL stores). */
  liveKeys: Map<string, string>;
  /** Every file's storage key, live or not, to the files that have it. */
  filesByKey: Map<string, Set<string>>;
  filesByBatch: Map<string, Set<string>>;
  batches: Map<string, UploadBatch>;
  /** `idempotencyKey` to batch id. */
  batchIds: Map<string, string>;
  /** In emission order. */
  events: Map<string, OutboxDelivery>;
  /** {@link eventKey} to event id (unique per eventType and idempotencyKey). */
  eventIds: Map<string, string>;
  /** In creation order. */
  deliveries: Map<string, WebhookDelivery>;
  /** An event's delivery ids, in creation order; the array is replaced, never changed. */
  deliveryIds: Map<string, readonly string[]>;
  /** Kept as stored (secrets sealed when the store encrypts), oldest first. */
  endpoints: Map<string, WebhookEndpoint>;
}

export const emptyState = (): MemoryState => ({
  files: new Map(),
  liveKeys: new Map(),
  filesByKey: new Map(),
  filesByBatch: new Map(),
  batches: new Map(),
  batchIds: new Map(),
  events: new Map(),
  eventIds: new Map(),
  deliveries: new Map(),
  deliveryIds: new Map(),
  endpoints: new Map(),
});

/** What an operation works on, under the store's lock. */
export interface Workspace {
  readonly state: MemoryState;
  /** Every write goes through it (see {@link Journal}). */
  readonly journal: Journal;
  /** Say that relays have something new to claim: the store wakes them once the operation commits. */
  notify(): void;
}

/** Hands out copies: callers never hold the objects in the state. */
export const copy = <T>(value: T): T => structuredClone(value);

/** `value` without `keys` (optional fields that a change clears). */
export function without<T extends object, K extends keyof T>(value: T, ...keys: K[]): Omit<T, K> {
  const rest = { ...value };
  for (const key of keys) delete rest[key];
  return rest;
}

export const eventKey = (eventType: string, idempotencyKey: string): string => `${eventType.length}:${eventType}:${idempotencyKey}`;

/** A Date of its own, so a caller that changes the one it passed changes nothing stored. */
export const instant = (at?: Date): Date => new Date(at === undefined ? Date.now() : at.getTime());
