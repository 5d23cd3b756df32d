export { OutboxRelay, type DeliveryReport, type OutboxRelayOptions, type RelayRunResult } from './relay.js';
export { verifyWebhook, signWebhook, type VerifiedWebhook, type VerifyWebhookOptions, type WebhookHeaders } from './standard-webhooks.js';
export { generateWebhookSecret } from '../upload/webhook-secret.js';
export { WebhookVerificationError, isWebhookVerificationError, type WebhookVerificationCode } from '../errors.js';
/** @deprecated the legacy `x-webhook-signature`; removed in the next minor release. */
export { verifyWebhookSignature, signWebhookBody } from './signature.js';
export { retryDelayMs, RETRY_BASE_SECONDS, RETRY_JITTER, RETRY_MAX_SECONDS } from './backoff.js';
export { deliveryHeaders, type EndpointResult, type FetchLike, type SignOptions } from './deliver.js';
export type { DeliveryOutcome, NewWebhookEndpoint, OutboxStore } from '../upload/ports.js';
export type { OutboxDelivery, OutboxEventStatus, WebhookEndpoint } from '../upload/model.js';
