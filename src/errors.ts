/**
 * Every error thrown by a Storage is a {@link StorageError}: it has a stable `code`, a message
 * that names the key or option and says how to fix the problem, and the underlying error as
 * `cause`. Guards (`isXxxError`) match on `name` as well as `instanceof`, so they keep working
 * when two copies of the package are loaded (ESM and CJS side by side).
 */

/** Stable error codes. They are part of the public API and never change meaning. */
export type StorageErrorCode =
  | 'E_STORAGE'
  | 'E_OBJECT_NOT_FOUND'
  | 'E_INVALID_KEY'
  | 'E_ABORTED'
  | 'E_WRITE_FAILED'
  | 'E_DELETE_FAILED'
  | 'E_CONFIG'
  | 'E_PERMISSION_DENIED'
  | 'E_UPLOAD_FAILED'
  | 'E_UPLOAD_NOT_FOUND'
  | 'E_INVALID_TRANSITION'
  | 'E_KEY_TAKEN'
  | 'E_DEPENDENCY'
  | 'E_WEBHOOK_HEADER'
  | 'E_WEBHOOK_TIMESTAMP'
  | 'E_WEBHOOK_SIGNATURE'
  | 'E_WEBHOOK_DESTINATION'
  | 'E_UPLOAD_REQUEST'
  | 'E_UPLOAD_EXPIRED'
  | 'E_UPLOAD_INCOMPLETE';

export interface StorageErrorOptions {
  /** The key the operation was about, if any. */
  key?: string | undefined;
  /** The underlying error. */
  cause?: unknown;
}

/** Base class of every error thrown by this package. */
export class StorageError extends Error {
  override name = 'StorageError';
  readonly code: StorageErrorCode;
  /** The key the failed operation was about, when there is one. */
  readonly key: string | undefined;

  constructor(message: string, code: StorageErrorCode = 'E_STORAGE', options: StorageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.key = options.key;
  }
}

/** The key does not exist (or, on S3, is a pending claim that holds no data yet). */
export class ObjectNotFoundError extends StorageError {
  override name = 'ObjectNotFoundError';
  constructor(key: string, options: Omit<StorageErrorOptions, 'key'> = {}) {
    super(`No object at key "${key}". Check the key, or call exists() first.`, 'E_OBJECT_NOT_FOUND', {
      ...options,
      key,
    });
  }
}

/** The key (or filename) breaks the key rules; nothing was read or written. */
export class InvalidKeyError extends StorageError {
  override name = 'InvalidKeyError';
  /** Which rule the key breaks, in plain words. */
  readonly reason: string;
  constructor(key: string, reason: string, options: Omit<StorageErrorOptions, 'key'> = {}) {
    super(
      `Invalid key ${JSON.stringify(key)}: ${reason}. Keys are "/"-separated relative paths ` +
        `without empty, "." or ".." segments, control characters or backslashes; ` +
        `use getValidName() to turn a user's filename into a safe one.`,
      'E_INVALID_KEY',
      { ...options, key },
    );
    this.reason = reason;
  }
}

/** The operation was aborted by its `signal`; nothing was left behind. */
export class StorageAbortedError extends StorageError {
  override name = 'StorageAbortedError';
  constructor(key: string | undefined, options: Omit<StorageErrorOptions, 'key'> = {}) {
    super(
      `The operation on ${key === undefined ? 'the storage' : `key "${key}"`} was aborted; nothing was written.`,
      'E_ABORTED',
      { ...options, key },
    );
  }
}

/** A write failed (the source stream errored, the backend refused it, …); nothing was left behind. */
export class StorageWriteError extends StorageError {
  override name = 'StorageWriteError';
  constructor(message: string, options: StorageErrorOptions = {}) {
    super(message, 'E_WRITE_FAILED', options);
  }
}

/** One key that {@link Storage.deleteMany} could not delete, and why. */
export interface DeleteFailure {
  key: string;
  /** The backend's error for this key, translated (a {@link StorageError}). */
  error: StorageError;
}

/**
 * `deleteMany()` could not delete some keys (after retrying what could be retried); every
 * other key it was given is deleted. `failures` names each key left and its error.
 */
export class StorageDeleteError extends StorageError {
  override name = 'StorageDeleteError';
  readonly failures: ReadonlyArray<DeleteFailure>;
  constructor(failures: ReadonlyArray<DeleteFailure>, options: Omit<StorageErrorOptions, 'key'> = {}) {
    const first = failures[0];
    const more = failures.length > 1 ? ` and ${failures.length - 1} more` : '';
    super(
      `Could not delete ${failures.length} object${failures.length === 1 ? '' : 's'}: ` +
        `"${first?.key ?? ''}" (${first?.error.message ?? 'unknown error'})${more}. The other keys were deleted; ` +
        `retry the keys in error.failures.`,
      'E_DELETE_FAILED',
      { key: first?.key, cause: options.cause ?? first?.error },
    );
    this.failures = failures;
  }
}

/** The storage is misconfigured: a bad option, a missing bucket, wrong credentials. */
export class StorageConfigError extends StorageError {
  override name = 'StorageConfigError';
  /** The option (or environment variable) at fault, when one is known. */
  readonly option: string | undefined;
  /** Every bad or missing environment variable, when the error comes from reading the environment. */
  readonly problems: ReadonlyArray<{ variable: string; reason: string; accepted?: string }>;
  constructor(
    message: string,
    options: StorageErrorOptions & {
      option?: string | undefined;
      problems?: ReadonlyArray<{ variable: string; reason: string; accepted?: string }>;
    } = {},
  ) {
    super(message, 'E_CONFIG', options);
    this.option = options.option;
    this.problems = options.problems ?? [];
  }
}

/** The backend refused the operation (HTTP 403, EACCES). */
export class StoragePermissionError extends StorageError {
  override name = 'StoragePermissionError';
  constructor(message: string, options: StorageErrorOptions = {}) {
    super(message, 'E_PERMISSION_DENIED', options);
  }
}

/**
 * An optional package this feature needs is not installed, or its native module was built for
 * another Node version. `packages` names them; `fix` is the command that fixes it.
 */
export class StorageDependencyError extends StorageError {
  override name = 'StorageDependencyError';
  readonly packages: readonly string[];
  readonly fix: string;
  constructor(message: string, options: StorageErrorOptions & { packages: readonly string[]; fix: string }) {
    super(`${message} Fix: ${options.fix}`, 'E_DEPENDENCY', options);
    this.packages = options.packages;
    this.fix = options.fix;
  }
}

/** Why `verifyWebhook` refused a delivery: answer it with a 4xx and do not handle it. */
export type WebhookVerificationCode = 'E_WEBHOOK_HEADER' | 'E_WEBHOOK_TIMESTAMP' | 'E_WEBHOOK_SIGNATURE';

/**
 * A webhook delivery failed verification. `code` says why: `E_WEBHOOK_HEADER` (a
 * `webhook-id`, `webhook-timestamp` or `webhook-signature` header missing or malformed),
 * `E_WEBHOOK_TIMESTAMP` (outside the tolerance: a replay, or a clock off by more than it) or
 * `E_WEBHOOK_SIGNATURE` (no signature matches any secret: forged, altered, or the wrong secret).
 * The message never holds a secret or a signature.
 */
export class WebhookVerificationError extends StorageError {
  override name = 'WebhookVerificationError';
  declare readonly code: WebhookVerificationCode;
  constructor(message: string, code: WebhookVerificationCode, options: Omit<StorageErrorOptions, 'key'> = {}) {
    super(message, code, options);
  }
}

/**
 * The webhook relay refused an endpoint because its address is not public: loopback, private,
 * link-local, carrier-grade NAT, unique local, reserved, … Thrown when the endpoint is
 * registered (its hostname or a resolved address is non-public) and at delivery (the address
 * actually connected is non-public, so DNS cannot rebind around the registration check).
 * Nothing was sent to the endpoint. For a development or trusted network, set
 * `allowPrivateNetworks: true`.
 *
 * @example
 * ```ts
 * try {
 *   await assertPublicDestination('http://127.0.0.1:3000/hooks');
 * } catch (error) {
 *   if (isWebhookDestinationError(error)) console.error(error.address, error.reason); // 127.0.0.1 loopback
 * }
 * ```
 */
export class WebhookDestinationError extends StorageError {
  override name = 'WebhookDestinationError';
  declare readonly code: 'E_WEBHOOK_DESTINATION';
  /** The endpoint's origin and path: never its credentials, query string or fragment. */
  readonly url: string;
  /** The refused IP address, when one is known (not for a hostname such as `localhost`). */
  readonly address: string | undefined;
  /** Why the address is not public, e.g. `loopback`, `private`, `IPv4-mapped link-local`. */
  readonly reason: string;
  constructor(
    url: string,
    reason: string,
    options: Omit<StorageErrorOptions, 'key'> & { address?: string | undefined } = {},
  ) {
    const printable = WebhookDestinationError.#printable(url);
    const subject = options.address ?? printable.hostname;
    super(
      `Webhook destination ${printable.url} refused: ${subject} is not a public address (${reason}). ` +
        `The relay only delivers to public addresses; for development or a trusted network, ` +
        `set allowPrivateNetworks: true.`,
      'E_WEBHOOK_DESTINATION',
      options,
    );
    this.url = printable.url;
    this.address = options.address;
    this.reason = reason;
  }

  // The URL may carry a token in its query or credentials: keep only the origin and path.
  static #printable(url: string): { url: string; hostname: string } {
    try {
      const parsed = new URL(url);
      return { url: `${parsed.origin}${parsed.pathname}`, hostname: parsed.hostname };
    } catch {
      return { url: '(invalid URL)', hostname: '(invalid URL)' };
    }
  }
}

/** Why an upload request to a signed upload URL was refused (see {@link SignedUploadError}). */
export type SignedUploadRefusal =
  /** The URL lacks a parameter, or one is malformed. */
  | 'malformed'
  /** The signature does not match: the URL was altered, or signed with another secret. */
  | 'signature'
  /** The URL has expired. */
  | 'expired'
  /** A header (`Content-Type`, `Content-Length`, `Content-MD5`, `Content-Disposition`) differs from the signed one. */
  | 'header'
  /** The body has more bytes than signed. */
  | 'too-large'
  /** The body ended before the signed size. */
  | 'too-small'
  /** The body's MD5 differs from the signed `Content-MD5`. */
  | 'digest'
  /** Not a PUT. */
  | 'method';

/**
 * A request to a signed upload URL (filesystem, memory) was refused; nothing was stored.
 * Answer it with `status`. The message names what differs, never the signature or the secret.
 */
export class SignedUploadError extends StorageError {
  override name = 'SignedUploadError';
  declare readonly code: 'E_UPLOAD_REQUEST';
  readonly reason: SignedUploadRefusal;
  /** The HTTP status to answer with: 400, 403, 405 or 413. */
  readonly status: number;
  constructor(reason: SignedUploadRefusal, message: string, options: StorageErrorOptions = {}) {
    super(message, 'E_UPLOAD_REQUEST', options);
    this.reason = reason;
    this.status = reason === 'signature' || reason === 'expired' ? 403 : reason === 'method' ? 405 : reason === 'too-large' ? 413 : 400;
  }
}

function matches(error: unknown, name: string, ctor: abstract new (...args: never[]) => Error): boolean {
  return error instanceof ctor || (error instanceof Error && error.name === name);
}

const STORAGE_ERROR_NAMES = new Set([
  'StorageError',
  'ObjectNotFoundError',
  'InvalidKeyError',
  'StorageAbortedError',
  'StorageWriteError',
  'StorageDeleteError',
  'StorageConfigError',
  'StoragePermissionError',
  'UploadFailedError',
  'UploadNotFoundError',
  'InvalidTransitionError',
  'StorageKeyTakenError',
  'StorageDependencyError',
  'WebhookVerificationError',
  'WebhookDestinationError',
  'SignedUploadError',
  'DirectUploadExpiredError',
  'DirectUploadIncompleteError',
]);

export const isStorageError = (error: unknown): error is StorageError =>
  error instanceof StorageError || (error instanceof Error && STORAGE_ERROR_NAMES.has(error.name));
export const isObjectNotFoundError = (error: unknown): error is ObjectNotFoundError =>
  matches(error, 'ObjectNotFoundError', ObjectNotFoundError);
export const isInvalidKeyError = (error: unknown): error is InvalidKeyError =>
  matches(error, 'InvalidKeyError', InvalidKeyError);
export const isStorageAbortedError = (error: unknown): error is StorageAbortedError =>
  matches(error, 'StorageAbortedError', StorageAbortedError);
export const isStorageWriteError = (error: unknown): error is StorageWriteError =>
  matches(error, 'StorageWriteError', StorageWriteError);
export const isStorageDeleteError = (error: unknown): error is StorageDeleteError =>
  matches(error, 'StorageDeleteError', StorageDeleteError);
export const isStorageConfigError = (error: unknown): error is StorageConfigError =>
  matches(error, 'StorageConfigError', StorageConfigError);
export const isStoragePermissionError = (error: unknown): error is StoragePermissionError =>
  matches(error, 'StoragePermissionError', StoragePermissionError);
export const isStorageDependencyError = (error: unknown): error is StorageDependencyError =>
  matches(error, 'StorageDependencyError', StorageDependencyError);
export const isWebhookVerificationError = (error: unknown): error is WebhookVerificationError =>
  matches(error, 'WebhookVerificationError', WebhookVerificationError);
export const isWebhookDestinationError = (error: unknown): error is WebhookDestinationError =>
  matches(error, 'WebhookDestinationError', WebhookDestinationError);
export const isSignedUploadError = (error: unknown): error is SignedUploadError => matches(error, 'SignedUploadError', SignedUploadError);
