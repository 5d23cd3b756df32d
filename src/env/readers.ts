/**
 * Typed environment readers, in the spirit of django-configurations' `values.BooleanValue`,
 * `IntegerValue` and `URLValue`. A reader never guesses: a value it cannot read is a problem,
 * collected with the others and thrown at once as one StorageConfigError. Secret values never
 * appear in a problem.
 */
import { StorageConfigError } from '../errors.js';

export type Env = Record<string, string | undefined>;

/** One bad or missing variable. */
export interface EnvProblem {
  variable: string;
  reason: string;
  /** What would be accepted, in words. */
  accepted?: string;
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);
export const BOOLEAN_WORDS = 'true/false, yes/no, on/off, 1/0 (any case)';

/** `true/false/yes/no/on/off/1/0` in any case; anything else is undefined (never silently false). */
export function parseBoolean(value: string): boolean | undefined {
  const word = value.trim().toLowerCase();
  if (TRUE.has(word)) return true;
  if (FALSE.has(word)) return false;
  return undefined;
}

/** A whole decimal number within [min, max]; undefined otherwise. */
export function parseInteger(value: string, range: { min?: number; max?: number } = {}): number | undefined {
  if (!/^\s*-?\d+\s*$/u.test(value)) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) return undefined;
  if (range.min !== undefined && n < range.min) return undefined;
  if (range.max !== undefined && n > range.max) return undefined;
  return n;
}

/** An absolute http(s) URL; undefined otherwise. */
export function parseUrl(value: string): URL | undefined {
  const trimmed = value.trim();
  if (!URL.canParse(trimmed)) return undefined;
  const url = new URL(trimmed);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
}

/** Reads variables from one environment and collects every problem. */
export class EnvReader {
  readonly problems: EnvProblem[] = [];
  readonly #env: Env;

  constructor(env: Env) {
    this.#env = env;
  }

  /** The raw value, trimmed; empty counts as unset. */
  raw(name: string): string | undefined {
    const value = this.#env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  problem(variable: string, reason: string, accepted?: string): void {
    this.problems.push({ variable, reason, ...(accepted === undefined ? {} : { accepted }) });
  }

  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    return this.raw(name) ?? fallback;
  }

  required(name: string, what: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) this.problem(name, `is required: ${what}`);
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = parseBoolean(value);
    if (parsed === undefined) {
      this.problem(name, `is not a boolean (got ${JSON.stringify(value)})`, BOOLEAN_WORDS);
      return fallback;
    }
    return parsed;
  }

  integer(name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = parseInteger(value, range);
    if (parsed === undefined) {
      const bounds = `a whole number${range.min === undefined ? '' : ` from ${range.min}`}${range.max === undefined ? '' : ` to ${range.max}`}`;
      this.problem(name, `is not valid (got ${JSON.stringify(value)})`, bounds);
      return fallback;
    }
    return parsed;
  }

  /**
   * A size in bytes: a whole number, optionally with a binary unit (`KiB`, `MiB`, `GiB`; `K`,
   * `M`, `G` mean the same), e.g. `268435456` or `256MiB`.
   */
  bytes(name: string, fallback: number, range: { min?: number } = {}): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const match = /^(\d+)\s*(?:([KMG])(?:i?B)?|B)?$/iu.exec(value);
    const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(match?.[2] ?? '').toUpperCase()] ?? 1;
    const parsed = match === null ? Number.NaN : Number(match[1]) * unit;
    if (!Number.isSafeInteger(parsed) || parsed < (range.min ?? 0)) {
      this.problem(name, `is not a size (got ${JSON.stringify(value)})`, `a whole number of bytes${range.min === undefined ? '' : ` from ${range.min}`}, or with a unit: 512KiB, 256MiB, 1GiB`);
      return fallback;
    }
    return parsed;
  }

  /** A URL; credentials in it are a problem (they would be printed) and are never echoed. */
  url(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const parsed = parseUrl(value);
    if (parsed === undefined) {
      this.problem(name, 'is not an http(s) URL', 'e.g. http://127.0.0.1:9000 or https://s3.eu-central-1.amazonaws.com');
      return undefined;
    }
    if (parsed.username !== '' || parsed.password !== '') {
      this.problem(name, 'must not contain credentials', 'a URL without user:password@; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
      return undefined;
    }
    return parsed.href.replace(/\/$/u, '');
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T;
  oneOf<T extends string>(name: string, values: readonly T[]): T | undefined;
  oneOf<T extends string>(name: string, values: readonly T[], fallback?: T): T | undefined {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const lower = value.toLowerCase() as T;
    if (values.includes(lower)) return lower;
    this.problem(name, `is not one of the accepted values (got ${JSON.stringify(value)})`, values.join(', '));
    return fallback;
  }

  /** A secret: present or not; its value never appears in a problem. */
  secret(name: string): string | undefined {
    return this.raw(name);
  }

  /** Throw every collected problem at once. */
  throwIfProblems(context: string): void {
    if (this.problems.length === 0) return;
    const lines = this.problems.map((p) => `  - ${p.variable} ${p.reason}${p.accepted === undefined ? '' : `; accepted: ${p.accepted}`}`);
    throw new StorageConfigError(`${context}: ${this.problems.length} problem(s) in the environment:\n${lines.join('\n')}`, {
      option: this.problems[0]?.variable,
      problems: [...this.problems],
    });
  }
}
