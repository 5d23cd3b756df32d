/**
 * Webhook endpoint secrets at rest: sealed with AES-256-GCM (`node:crypto`) when a store has a
 * `secretsKey`, kept as given otherwise. A sealed value is `enc:v1:` + base64(iv ‖ tag ‖
 * ciphertext); the endpoint id is the additional data, so a sealed secret copied to another
 * endpoint's row does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { StorageConfigError } from '../errors.js';
import type { WebhookEndpoint } from '../upload/model.js';

const SEALED_PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A `secretsKey`: 32 bytes, as a Buffer or as base64 (`openssl rand -base64 32`) or hex. */
export type SecretsKey = string | Uint8Array;

function parseKey(key: SecretsKey): Buffer {
  if (typeof key !== 'string') {
    if (key.byteLength === KEY_BYTES) return Buffer.from(key);
  } else {
    const trimmed = key.trim();
    const hex = /^[0-9a-f]{64}$/iu.test(trimmed) ? Buffer.from(trimmed, 'hex') : undefined;
    const base64 = Buffer.from(trimmed, 'base64');
    if (hex !== undefined) return hex;
    if (base64.length === KEY_BYTES && base64.toString('base64') === trimmed) return base64;
  }
  throw new StorageConfigError(
    'Store option "secretsKey" (WEBHOOK_SECRETS_KEY) must be 32 bytes: 44 characters of standard base64 (openssl rand -base64 32), 64 hex digits, or a 32-byte Buffer.',
    { option: 'secretsKey' },
  );
}

/** Seals and opens endpoint secrets for one store. */
export class WebhookSecretBox {
  readonly #key: Buffer | undefined;

  /** @throws StorageConfigError when `key` is given but not 32 bytes */
  constructor(key?: SecretsKey) {
    this.#key = key === undefined ? undefined : parseKey(key);
  }

  /** Whether secrets are stored encrypted. */
  get encrypts(): boolean {
    return this.#key !== undefined;
  }

  /** The value to store for `secret` of endpoint `endpointId`. */
  seal(secret: string, endpointId: string): string {
    if (this.#key === undefined) return secret;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(endpointId, 'utf8'));
    const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return `${SEALED_PREFIX}${Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64')}`;
  }

  /**
   * The secret a stored value holds. Values stored before a key was configured are returned as
   * they are (rotate the secret to have it sealed).
   * @throws StorageConfigError when the value is sealed and this store has no key, or not the key it was sealed with
   */
  open(stored: string, endpointId: string): string {
    if (!stored.startsWith(SEALED_PREFIX)) return stored;
    if (this.#key === undefined) {
      throw new StorageConfigError(
        `The secret of webhook endpoint ${endpointId} is stored encrypted, and this store has no "secretsKey": configure the key it was sealed with (WEBHOOK_SECRETS_KEY).`,
        { option: 'secretsKey' },
      );
    }
    const raw = Buffer.from(stored.slice(SEALED_PREFIX.length), 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(endpointId, 'utf8'));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (cause) {
      throw new StorageConfigError(
        `The secret of webhook endpoint ${endpointId} does not open with this store's "secretsKey" (WEBHOOK_SECRETS_KEY): it was sealed with another key, or the stored value was altered.`,
        { option: 'secretsKey', cause },
      );
    }
  }

  /** `endpoint` as stored (its secrets sealed) → as handed out (opened). */
  openEndpoint(endpoint: WebhookEndpoint): WebhookEndpoint {
    const opened = { ...endpoint, secret: this.open(endpoint.secret, endpoint.id) };
    if (endpoint.previousSecret !== undefined) opened.previousSecret = this.open(endpoint.previousSecret, endpoint.id);
    return opened;
  }
}

/** Whether a stored secret value is sealed (for tests and docs). */
export const isSealedSecret = (stored: string): boolean => stored.startsWith(SEALED_PREFIX);
