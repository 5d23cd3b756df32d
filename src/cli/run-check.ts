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
  ok: boolean;
  detail: string;
}

export interface CheckReport {
  ok: boolean;
  backend?: StorageConfig['backend'];
  config?: Record<string, string | number | boolean>;
  steps: CheckStep[];
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

async function probe(storage: Storage, steps: CheckStep[], fetchUrl: typeof fetch, s3: S3Checks | undefined): Promise<void> {
  const body = `doorito-storage check ${randomUUID()}`;
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    try {
      steps.push({ name, ok: true, detail: await fn() });
      return true;
    } catch (error) {
      steps.push({ name, ok: false, detail: message(error) });
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

/** Run every check; never throws. */
export async function runCheck(env: Env, options: { fetch?: typeof fetch } = {}): Promise<CheckReport> {
  const steps: CheckStep[] = [];
  let config: StorageConfig;
  try {
    config = loadStorageConfig(env);
  } catch (error) {
    steps.push({ name: 'read the configuration', ok: false, detail: message(error) });
    if (!isStorageConfigError(error)) throw error;
    return { ok: false, steps };
  }
  const summary = describeStorageConfig(config);
  steps.push({ name: 'read the configuration', ok: true, detail: `${config.backend} storage` });
  let storage: Storage;
  try {
    storage = await createStorage(config);
  } catch (error) {
    steps.push({ name: 'create the storage', ok: false, detail: message(error) });
    return { ok: false, backend: config.backend, config: summary, steps };
  }
  // createStorage loaded the S3 adapter, so the SDK is there.
  const s3 = config.backend === 's3' ? await import('./s3-checks.js') : undefined;
  try {
    if (s3 !== undefined) steps.push(await s3.reachBucket(storage));
    await probe(storage, steps, options.fetch ?? fetch, s3);
  } finally {
    s3?.destroy(storage);
  }
  return { ok: steps.every((s) => s.ok), backend: config.backend, config: summary, steps };
}

/** The report in a person's words. */
export function formatReport(report: CheckReport): string {
  const lines: string[] = [];
  if (report.config !== undefined) {
    lines.push('Configuration (secrets redacted):');
    for (const [key, value] of Object.entries(report.config)) lines.push(`  ${key}: ${String(value)}`);
    lines.push('');
  }
  for (const step of report.steps) lines.push(`${step.ok ? 'ok  ' : 'FAIL'} ${step.name}: ${step.detail}`);
  lines.push('', report.ok ? 'All checks passed.' : 'Some checks failed: fix what the FAIL lines say, then run the check again.');
  return lines.join('\n');
}
