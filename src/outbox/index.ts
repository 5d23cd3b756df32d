export {
  OutboxRelay,
  DELIVERY_EXHAUSTED_EVENT,
  ENDPOINT_DISABLED_EVENT,
  type DeliveryReport,
  type OutboxRelayOptions,
  type RelayRunResult,
} from './relay.js';
export { verifyWebhook, signWebhook, type VerifiedWebhook, type VerifyWebhookOptions, type WebhookHeaders } from './standard-webhooks.js';
export { generateWebhookSecret } from '../upload/webhook-secret.js';
export { WebhookSecretBox, isSealedSecret, type SecretsKey } from './secret-box.js';
export { WebhookVerificationError, isWebhookVerificationError, type WebhookVerificationCode } from '../errors.js';
/** @deprecated the legacy `x-webhook-signature`; removed in the next minor release. */
export { verifyWebhookSignature, signWebhookBody } from './signature.js';
export { retryDelayMs, parseRetryAfter, DEFAULT_RETRY_DELAYS_MS, MAX_RETRY_AFTER_MS, RETRY_JITTER } from './backoff.js';
export { deliveryHeaders, signingSecrets, type EndpointResult, type FetchLike, type SignOptions } from './deliver.js';
export type {
  ClaimedDelivery,
  ClaimOptions,
  CompletedDelivery,
  DeliveryOutcome,
  DeliveryQuery,
  NewWebhookEndpoint,
  OutboxStore,
  RecoveredEndpoint,
  RotateSecretOptions,
} from '../upload/ports.js';
export type { DeliveryAttempt, OutboxDelivery, OutboxEventStatus, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint } from '../upload/model.js';
export { createWebhookFetch, type WebhookFetchOptions } from './webhook-fetch.js';
export { assertPublicDestination, nonPublicReason, type AssertPublicDestinationOptions, type DestinationLookup } from './destination-guard.js';
export { WebhookDestinationError, isWebhookDestinationError } from '../errors.js';
