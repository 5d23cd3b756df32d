/** The one check of a new webhook endpoint, shared by every store, so each refuses the same input the same way. */
import { StorageConfigError } from '../errors.js';
import type { NewWebhookEndpoint } from './ports.js';

const describeValue = (value: unknown): string =>
  value === undefined ? 'undefined' : value === null ? 'null' : typeof value === 'string' ? (value === '' ? 'an empty string' : 'a string of blanks') : `a ${typeof value}`;

/**
 * Refuse an endpoint without a usable URL or secret, before anything is stored. The secret is
 * what receivers verify signatures with: an endpoint without one would be signed with an
 * empty key, which anyone can forge. Values are never echoed (URLs may carry credentials).
 */
export function validateNewWebhookEndpoint(input: NewWebhookEndpoint): void {
  const secret: unknown = (input as { secret?: unknown }).secret;
  if (typeof secret !== 'string' || secret.trim() === '') {
    throw new StorageConfigError(
      `Webhook endpoint option "secret" is required: a non-empty string, the key receivers verify signatures with; got ${describeValue(secret)}. ` +
        `Generate one with: node -e "console.log(require('node:crypto').randomBytes(32).toString('base64url'))"`,
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
}
