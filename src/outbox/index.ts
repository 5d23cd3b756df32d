export { OutboxRelay, type DeliveryReport, type OutboxRelayOptions, type RelayRunResult } from './relay.js';
export { verifyWebhookSignature, signWebhookBody } from './signature.js';
export { retryDelayMs, RETRY_BASE_SECONDS, RETRY_JITTER, RETRY_MAX_SECONDS } from './backoff.js';
export { deliveryHeaders, type EndpointResult, type FetchLike } from './deliver.js';
export type { DeliveryOutcome, NewWebhookEndpoint, OutboxStore } from '../upload/ports.js';
export type { OutboxDelivery, OutboxEventStatus, WebhookEndpoint } from '../upload/model.js';
