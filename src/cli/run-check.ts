/**
 * `doorito-storage check`: validate the environment, print the redacted configuration, then
 * probe the storage for real, step by step (the analogue of Django's `manage.py check`).
 */
import { randomUUID } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { createStorage, describeStorageConfig, loadStorageConfig, type StorageConfig } from '../env/storage-env.js';
import type { Env } from '../env/readers.js';
import { isStorageConfigError } from '../errors.js';
import type { Storage } from '../types.js';
import type * as S3ChecksModule from './s3-checks.js';

/** The S3-only steps, loaded with the SDK when the configuration chooses S3. */
type S3Checks = typeof S3ChecksModule;

export interface CheckStep {
  name: string;
  /** False for `fail` and `unsupported`: the command then exits 1. */
  ok: boolean;
  /**
   * `warn`: passed, with something to look at; `unsupported`: the server lacks what the step
   * asks about (e.g. bucket CORS on OpenStack Swift), and the detail says what to do instead.
   */
  status: 'ok' | 'warn' | 'fail' | 'unsupported';
  detail: string;
}

export interface CheckReport {
  ok: boolean;
  backend?: StorageConfig['backend'];
  config?: Record<string, string | number | boolean>;
  steps: CheckStep[];
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const passed = (name: string, detail: string): CheckStep => ({ name, ok: true, status: 'ok', detail });
const failed = (name: string, detail: string): CheckStep => ({ name, ok: false, status: 'fail', detail });

async function probe(storage: Storage, steps: CheckStep[], fetchUrl: typeof fetch, s3: S3Checks | undefined): Promise<void> {
  const body = `doorito-storage check ${randomUUID()}`;
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    try {
      steps.push(passed(name, await fn()));
      return true;
    } catch (error) {
      steps.push(failed(name, message(error)));
      return false;
    }
  };
  let key = `doorito-check/probe-${randomUUID()}.txt`;
  if (!(await step('write a probe file', async () => ((key = (await storage.save(key, body)).key), `wrote ${key}`)))) return;
  if (s3 !== undefined) await step('what the server guarantees', () => s3.guarantees(storage));
  try {
    await step('read it back', async () => {
      const read = await text(await storage.open(key));
      if (read !== body) throw new Error('the bytes read back differ from the bytes written');
      return 'the bytes match';
    });
    await step('fetch its shareable URL', async () => {
      const url = await storage.url(key);
      if (!/^https?:/u.test(url)) return `skipped: the URL ${url} is served by your app's static route, not by the storage`;
      const response = await fetchUrl(url);
      if (response.status !== 200) {
        throw new Error(`the URL answered HTTP ${response.status}; check the clock, the region and, behind Docker or a proxy, AWS_S3_PUBLIC_ENDPOINT_URL`);
      }
      if ((await response.text()) !== body) throw new Error('the URL served other bytes');
      return `HTTP 200 from ${new URL(url).origin}`;
    });
  } finally {
    await step('delete the probe', async () => (await storage.delete(key), 'deleted'));
  }
}

export interface CheckOptions {
  fetch?: typeof fetch;
  /** Browser origins (`https://app.example.com`) that upload straight to the storage: one CORS step each. */
  origins?: string[];
}

/** Run every check; never throws. */
export async function runCheck(env: Env, options: CheckOptions = {}): Promise<CheckReport> {
  const fetchUrl = options.fetch ?? fetch;
  const origins = options.origins ?? [];
  const steps: CheckStep[] = [];
  let config: StorageConfig;
  try {
    config = loadStorageConfig(env);
  } catch (error) {
    steps.push(failed('read the configuration', message(error)));
    if (!isStorageConfigError(error)) throw error;
    return { ok: false, steps };
  }
  const summary = describeStorageConfig(config);
  steps.push(passed('read the configuration', `${config.backend} storage`));
  let storage: Storage;
  try {
    storage = await createStorage(config);
  } catch (error) {
    steps.push(failed('create the storage', message(error)));
    return { ok: false, backend: config.backend, config: summary, steps };
  }
  // createStorage loaded the S3 adapter, so the SDK is there.
  const s3 = config.backend === 's3' ? await import('./s3-checks.js') : undefined;
  try {
    if (s3 !== undefined) steps.push(await s3.reachBucket(storage));
    await probe(storage, steps, fetchUrl, s3);
    if (origins.length > 0) {
      steps.push(
        ...(s3 !== undefined
          ? await (await import('./cors-check.js')).corsChecks(storage, origins, fetchUrl)
          : origins.map((origin) =>
              passed(`CORS for direct uploads from ${origin}`, "skipped: with local files, direct uploads go to your app's own upload route, so CORS is your app's to answer, not the storage's"),
            )),
      );
    }
  } finally {
    s3?.destroy(storage);
  }
  return { ok: steps.every((s) => s.ok), backend: config.backend, config: summary, steps };
}

const LABELS: Record<CheckStep['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', unsupported: 'UNSUPPORTED' };

/** The report in a person's words. */
export function formatReport(report: CheckReport): string {
  const lines: string[] = [];
  if (report.config !== undefined) {
    lines.push('Configuration (secrets redacted):');
    for (const [key, value] of Object.entries(report.config)) lines.push(`  ${key}: ${String(value)}`);
    lines.push('');
  }
  for (const step of report.steps) lines.push(`${LABELS[step.status]} ${step.name}: ${step.detail}`);
  const has = (status: CheckStep['status']): boolean => report.steps.some((s) => s.status === status);
  lines.push(
    '',
    has('fail')
      ? 'Some checks failed: fix what the FAIL lines say, then run the check again.'
      : has('unsupported')
        ? 'The server does not support what some checks ask for: the UNSUPPORTED lines say what to do instead.'
        : has('warn')
          ? 'All checks passed, with warnings: read the WARN lines.'
          : 'All checks passed.',
  );
  return lines.join('\n');
}
