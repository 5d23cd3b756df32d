/**
 * The error classes are public API: callers branch on `code` and on the isXxxError() guards, and
 * read `key`, `cause` and `option`. The guards must also recognise an error thrown by a second
 * copy of the package (ESM and CJS loaded side by side), which only shares the `name`.
 */
import { describe, expect, it } from 'vitest';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  StorageAbortedError,
  StorageConfigError,
  StorageError,
  StoragePermissionError,
  StorageWriteError,
  isInvalidKeyError,
  isObjectNotFoundError,
  isStorageAbortedError,
  isStorageConfigError,
  isStorageError,
  isStoragePermissionError,
  isStorageWriteError,
} from '../../src/index.js';

const KEY = 'uploads/2026/11/报告.pdf';

interface Case {
  name: string;
  code: string;
  make: (cause?: unknown) => StorageError;
  guard: (error: unknown) => boolean;
  /** Whether the class writes the key into its own message (the others take the caller's message). */
  messageNamesKey: boolean;
}

const CASES: Case[] = [
  {
    name: 'StorageError',
    code: 'E_STORAGE',
    make: (cause) => new StorageError(`Could not read key "${KEY}"`, 'E_STORAGE', { key: KEY, cause }),
    guard: isStorageError,
    messageNamesKey: true,
  },
  {
    name: 'ObjectNotFoundError',
    code: 'E_OBJECT_NOT_FOUND',
    make: (cause) => new ObjectNotFoundError(KEY, { cause }),
    guard: isObjectNotFoundError,
    messageNamesKey: true,
  },
  {
    name: 'InvalidKeyError',
    code: 'E_INVALID_KEY',
    make: (cause) => new InvalidKeyError(KEY, 'it is a test', { cause }),
    guard: isInvalidKeyError,
    messageNamesKey: true,
  },
  {
    name: 'StorageAbortedError',
    code: 'E_ABORTED',
    make: (cause) => new StorageAbortedError(KEY, { cause }),
    guard: isStorageAbortedError,
    messageNamesKey: true,
  },
  {
    name: 'StorageWriteError',
    code: 'E_WRITE_FAILED',
    make: (cause) => new StorageWriteError('Could not write', { key: KEY, cause }),
    guard: isStorageWriteError,
    messageNamesKey: false,
  },
  {
    name: 'StorageConfigError',
    code: 'E_CONFIG',
    make: (cause) => new StorageConfigError('Bad bucket', { key: KEY, cause, option: 'bucket' }),
    guard: isStorageConfigError,
    messageNamesKey: false,
  },
  {
    name: 'StoragePermissionError',
    code: 'E_PERMISSION_DENIED',
    make: (cause) => new StoragePermissionError('Access denied', { key: KEY, cause }),
    guard: isStoragePermissionError,
    messageNamesKey: false,
  },
];

/** What a second copy of the package throws: a different class that shares only the name. */
function lookAlike(name: string): Error {
  const error = new Error('thrown by another copy of @doorito/storage');
  error.name = name;
  return error;
}

describe.each(CASES)('$name', ({ name, code, make, guard, messageNamesKey }) => {
  it(`has code ${code}, name ${name}, and is a StorageError and an Error`, () => {
    const error = make();
    expect(error.code).toBe(code);
    expect(error.name).toBe(name);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toMatch(new RegExp(`^${name}: `, 'u'));
    expect(error.stack?.split('\n')[0]).toMatch(new RegExp(`^${name}: `, 'u'));
  });

  it('keeps the cause and the key', () => {
    const cause = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    const error = make(cause);
    expect(error.cause).toBe(cause);
    expect(error.key).toBe(KEY);
    expect('cause' in make()).toBe(false);
  });

  if (messageNamesKey) {
    it('names the key in its message', () => {
      expect(make().message).toContain(KEY);
    });
  }

  it(`its guard matches it, and a look-alike Error named ${name}`, () => {
    expect(guard(make())).toBe(true);
    expect(guard(lookAlike(name))).toBe(true);
    expect(isStorageError(make())).toBe(true);
    expect(isStorageError(lookAlike(name))).toBe(true);
  });

  it('its guard rejects the other classes, plain objects and non-errors', () => {
    for (const other of CASES) {
      if (other.name === name) continue;
      // Every class is a StorageError, so only the base guard matches the others.
      expect(guard(other.make()), other.name).toBe(name === 'StorageError');
      expect(guard(lookAlike(other.name)), other.name).toBe(name === 'StorageError');
    }
    expect(guard({ name, code, message: 'not an Error', key: KEY })).toBe(false);
    expect(guard(new Error('plain'))).toBe(false);
    expect(guard(new TypeError('type'))).toBe(false);
    expect(guard(lookAlike(`${name}Extra`))).toBe(false);
    for (const value of [undefined, null, name, code, 42]) expect(guard(value), String(value)).toBe(false);
  });
});

describe('error details', () => {
  it('StorageError defaults to E_STORAGE and leaves key undefined when there is none', () => {
    const error = new StorageError('Something broke');
    expect(error.code).toBe('E_STORAGE');
    expect(error.key).toBeUndefined();
    expect(error.message).toBe('Something broke');
  });

  it('StorageConfigError keeps the option at fault', () => {
    const error = new StorageConfigError('S3_BUCKET is not set. Set it to your bucket name.', { option: 'S3_BUCKET' });
    expect(error.option).toBe('S3_BUCKET');
    expect(error.message).toContain('S3_BUCKET');
    expect(new StorageConfigError('no option').option).toBeUndefined();
  });

  it('InvalidKeyError keeps the reason and says how to fix the key', () => {
    const error = new InvalidKeyError('../x', 'it has a ".." segment');
    expect(error.reason).toBe('it has a ".." segment');
    expect(error.message).toContain('"../x"');
    expect(error.message).toContain('it has a ".." segment');
    expect(error.message).toContain('getValidName()');
  });

  it('StorageAbortedError without a key talks about the storage, not "undefined"', () => {
    const error = new StorageAbortedError(undefined);
    expect(error.key).toBeUndefined();
    expect(error.message).not.toContain('undefined');
    expect(error.message).toContain('the storage');
  });

  it('ObjectNotFoundError quotes a key with spaces and Unicode exactly', () => {
    const key = 'a dir/Ünïcödé file.txt';
    expect(new ObjectNotFoundError(key).message).toContain(`"${key}"`);
  });
});
