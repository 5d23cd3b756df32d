/** The one check of a new webhook endpoint, shared by every store, so each refuses the same input the same way. */
import { StorageConfigError } from '../errors.js';
import { assertPublicDestination } from '../outbox/destination-guard.js';
import type { NewWebhookEndpoint, RotateSecretOptions } from './ports.js';
import { generateWebhookSecret, webhookSecretProblem } from './webhook-secret.js';

const describeValue = (value: unknown): string =>
  value === undefined ? 'undefined' : value === null ? 'null' : typeof value === 'string' ? (value === '' ? 'an empty string' : 'a string of blanks') : `a ${typeof value}`;

/**
 * Refuse an endpoint without a usable URL or secret, before anything is stored, and return the
 * secret to store: the one given, or a new one ({@link generateWebhookSecret}) when it is
 * left out (a `secret` key set to `undefined` is refused: it is an unset variable). A given secret must be a non-blank string (an empty key can be forged by anyone); a
 * `whsec_` one must decode to 24–64 bytes. Values are never echoed (URLs may carry credentials,
 * and a secret is a secret).
 */
export function validateNewWebhookEndpoint(input: NewWebhookEndpoint): string {
  const secret: unknown = (input as { secret?: unknown }).secret;
  // `secret: process.env.X` with X unset is a mistake, not a wish for a new secret: only a
  // secret left out is generated.
  const given = Object.hasOwn(input, 'secret');
  if (given && (typeof secret !== 'string' || secret.trim() === '')) {
    throw new StorageConfigError(
      `Webhook endpoint option "secret" must be a non-empty string, the key receivers verify signatures with; got ${describeValue(secret)}. ` +
        'Omit it to have one generated (the returned endpoint holds it), or use generateWebhookSecret().',
      { option: 'secret' },
    );
  }
  const problem = typeof secret === 'string' ? webhookSecretProblem(secret) : undefined;
  if (problem !== undefined) {
    throw new StorageConfigError(
      `Webhook endpoint option "secret" is not a valid Standard Webhooks secret: ${problem}. ` +
        'A "whsec_" secret is "whsec_" + the base64 of 24 to 64 random bytes; omit the option to have one generated, or use generateWebhookSecret().',
      { option: 'secret' },
    );
  }
  let url: URL | undefined;
  try {
    url = typeof input.url === 'string' ? new URL(input.url) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new StorageConfigError(`Webhook endpoint option "url" must be an absolute http:// or https:// URL; got ${url === undefined ? describeValue(input.url) : `a ${url.protocol} URL`}.`, {
      option: 'url',
    });
  }
  const types: unknown = input.eventTypes;
  if (types !== undefined && (!Array.isArray(types) || types.some((t) => typeof t !== 'string' || t === ''))) {
    throw new StorageConfigError('Webhook endpoint option "eventTypes" must be an array of event type names (e.g. ["file.stored"]), or omitted for every type.', {
      option: 'eventTypes',
    });
  }
  return typeof secret === 'string' ? secret : generateWebhookSecret();
}

/** What a rotation stores: the new secret, and until when the old one still signs. */
export interface Rotation {
  secret: string;
  previousSecretExpiresAt: Date;
}

/**
 * Check the options of `rotateWebhookSecret` (the same in every store) and return what to store.
 * @throws StorageConfigError when `secret` is given but not usable, or `overlapHours` is not a number ≥ 0
 */
export function validateRotation(options: RotateSecretOptions = {}): Rotation {
  const hours = options.overlapHours ?? 24;
  if (typeof hours !== 'number' || !Number.isFinite(hours) || hours < 0) {
    throw new StorageConfigError(`rotateWebhookSecret option "overlapHours" must be a number of hours ≥ 0 (got ${String(hours)}).`, { option: 'overlapHours' });
  }
  const secret = Object.hasOwn(options, 'secret') ? validateNewWebhookEndpoint({ url: 'https://rotation.invalid/', secret: options.secret as string }) : generateWebhookSecret();
  const now = options.now ?? new Date();
  return { secret, previousSecretExpiresAt: new Date(now.getTime() + hours * 3_600_000) };
}

/** The store options of the destination guard at registration. */
export interface EndpointGuardOptions {
  /**
   * Register endpoints on loopback, private, link-local and other non-public addresses too.
   * Off, `createWebhookEndpoint()` refuses them with `WebhookDestinationError`; the relay has the
   * same option for delivery. Turn it on for development and trusted networks.
   * @default false
   */
  allowPrivateNetworks?: boolean | undefined;
}

/**
 * {@link validateNewWebhookEndpoint}, then the destination guard unless `allowPrivateNetworks`:
 * what every store's `createWebhookEndpoint()` runs before it stores anything.
 * @throws StorageConfigError for bad input; WebhookDestinationError for a non-public destination
 */
export async function checkNewWebhookEndpoint(input: NewWebhookEndpoint, options: EndpointGuardOptions): Promise<string> {
  const secret = validateNewWebhookEndpoint(input);
  if (options.allowPrivateNetworks !== true) await assertPublicDestination(input.url);
  return secret;
}
