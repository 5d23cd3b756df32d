/**
 * Keys to paths under the storage root, refusing every way out of it: `..` (refused by
 * validateKey) and symlinked directories or files that lead elsewhere. Also the one place
 * where filesystem errors become storage errors.
 */
import { mkdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidKeyError, ObjectNotFoundError, StorageError, StoragePermissionError } from '../../errors.js';
import { RESERVED_SEGMENT_PREFIX, randomSuffix, validateKey } from '../../keys.js';

const TEMP_SUFFIX = '.tmp';
const TEMP_NAME = /^\.doorito-[A-Za-z0-9]{16}\.tmp$/u;

/**
 * Whether a directory entry is one of our in-flight temp files (hidden from `list()`). No key
 * can have such a name: validateKey reserves the `.doorito-` prefix.
 */
export const isTempFileName = (name: string): boolean => TEMP_NAME.test(name);

export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

export class RootedPaths {
  readonly location: string;
  readonly #directoryMode: number;
  #root: Promise<string> | undefined;

  constructor(location: string, directoryMode: number) {
    this.location = location;
    this.#directoryMode = directoryMode;
  }

  /** The real path of the root, created on first use. */
  root(): Promise<string> {
    this.#root ??= mkdir(this.location, { recursive: true, mode: this.#directoryMode })
      .then(() => realpath(this.location))
      .catch((error: unknown) => {
        this.#root = undefined;
        throw this.translate(error, undefined, 'create the storage root');
      });
    return this.#root;
  }

  inside(root: string, real: string): boolean {
    return real === root || real.startsWith(root + path.sep);
  }

  escapes(key: string): InvalidKeyError {
    return new InvalidKeyError(key, `it resolves outside the storage root "${this.location}" through a symlink`);
  }

  /**
   * Create the directories of `segments` under the root, refusing to create anything when an
   * existing ancestor is a symlink that leads out of the root.
   */
  async #createDirectories(key: string, root: string, segments: string[]): Promise<void> {
    let existing = segments.length;
    while (existing > 0) {
      try {
        await stat(path.join(root, ...segments.slice(0, existing)));
        break;
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw this.translate(error, key, 'create the directory of');
        existing -= 1;
      }
    }
    const base = await realpath(path.join(root, ...segments.slice(0, existing)));
    if (!this.inside(root, base)) throw this.escapes(key);
    if (existing < segments.length) {
      await mkdir(path.join(base, ...segments.slice(existing)), { recursive: true, mode: this.#directoryMode });
    }
  }

  /** Resolve `key` to a path inside the root, refusing escapes through symlinked directories. */
  async resolve(key: string, options: { createParent?: boolean } = {}): Promise<{ file: string; dir: string }> {
    validateKey(key);
    const segments = key.split('/');
    const name = segments.pop() as string;
    return this.#resolveIn(key, segments, name, options);
  }

  /** The path of a temp file, by its key (its name is reserved, so `resolve()` refuses it); undefined if it is not one. */
  async resolveTemp(key: string): Promise<string | undefined> {
    const segments = key.split('/');
    const name = segments.pop() as string;
    if (!isTempFileName(name)) return undefined;
    if (segments.length > 0) validateKey(segments.join('/'));
    return (await this.#resolveIn(key, segments, name)).file;
  }

  async #resolveIn(key: string, segments: string[], name: string, options: { createParent?: boolean } = {}) {
    const root = await this.root();
    if (options.createParent === true) await this.#createDirectories(key, root, segments);
    let dir: string;
    try {
      dir = await realpath(path.join(root, ...segments));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') throw new ObjectNotFoundError(key, { cause: error });
      throw this.translate(error, key, 'resolve');
    }
    if (!this.inside(root, dir)) throw this.escapes(key);
    return { file: path.join(dir, name), dir };
  }

  /** A path we may read: the file itself must not be a symlink out of the root. */
  async resolveExisting(key: string): Promise<string> {
    const { file } = await this.resolve(key);
    const root = await this.root();
    let real: string;
    try {
      real = await realpath(file);
    } catch (error) {
      throw this.translate(error, key, 'read');
    }
    if (!this.inside(root, real) || real === root) throw this.escapes(key);
    return real;
  }

  /** A fresh temp file path in `dir`. */
  tempPath(dir: string): string {
    return path.join(dir, `${RESERVED_SEGMENT_PREFIX}${randomSuffix(16)}${TEMP_SUFFIX}`);
  }

  translate(error: unknown, key: string | undefined, action: string): Error {
    if (error instanceof StorageError) return error;
    const code = errnoCode(error);
    if (key !== undefined && (code === 'ENOENT' || code === 'ENOTDIR')) return new ObjectNotFoundError(key, { cause: error });
    if (code === 'EACCES' || code === 'EPERM') {
      return new StoragePermissionError(
        `Permission denied to ${action} ${key === undefined ? `"${this.location}"` : `key "${key}"`} under "${this.location}". ` +
          'Check the owner and mode of the storage directory.',
        { key, cause: error },
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    return new StorageError(`Could not ${action} ${key === undefined ? 'the storage' : `key "${key}"`}: ${reason}`, 'E_STORAGE', {
      key,
      cause: error,
    });
  }
}
