/**
 * Docs that run: every code block of README.md, docs/*.md and examples/express/README.md is
 * run, checked, or explicitly marked as not run (the markers are described in doc-blocks.ts).
 * - ts blocks pass `tsc --strict` (nodenext, against the built package by its name) and run
 *   with `node --import tsx`; js blocks run with node; each in a folder of its own inside the
 *   repository, removed afterwards, with the S3 server, a fresh Postgres database, a free port
 *   and `WEBHOOK_SECRET` when the block needs them. A run passes when it exits 0; a `serve`
 *   block must also pass its probe and stop on SIGTERM.
 * - json blocks parse; `dotenv` recipes are accepted by loadStorageConfig(), every variable read.
 * - A block of another language without a marker fails the first test.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadStorageConfig } from '../../src/env/index.js';
import { PG_TEST_URL, testPool } from '../helpers/postgres.js';
import { rawClient, s3Env, s3StorageVariables, type S3TestEnv } from '../helpers/s3-env.js';
import { parseBlocks, planBlock, type BlockPlan, type DocBlock, type Service } from './doc-blocks.js';
import {
  GIVENS_SOURCE,
  ROOT,
  exists,
  extensionOf,
  freePort,
  moduleSource,
  prepareRun,
  runProcess,
  serveProcess,
  typecheck,
  type ProcessResult,
  type ServeContext,
  type TypecheckError,
} from './doc-runner.js';

const DOC_FILES = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
  'examples/express/README.md',
];

const problems: string[] = [];
const plans: BlockPlan[] = [];
for (const file of DOC_FILES) {
  const { blocks, strayMarkers } = parseBlocks(file, readFileSync(path.join(ROOT, file), 'utf8'));
  for (const line of strayMarkers) problems.push(`${file}:${line}: a doc-test marker that is not right above a code block`);
  for (const block of blocks) {
    const plan = planBlock(block);
    if ('error' in plan) problems.push(plan.error);
    else plans.push(plan);
  }
}

const where = (block: DocBlock) => `${block.file}:${block.line}`;
const slug = (plan: BlockPlan) => `${plan.block.file.replace(/[^a-z0-9]+/giu, '-')}-${plan.block.line}`;
// A Standard Webhooks secret, as generateWebhookSecret() makes them.
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const S3 = s3Env();
let tmp = '';

beforeAll(async () => {
  tmp = await mkdtemp(path.join(ROOT, 'test/docs/.tmp-'));
});
afterAll(async () => {
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
  console.log(`docs code blocks\n${summary()}`);
});

/** Per file: blocks executed, typechecked, checked otherwise (json, dotenv), and not run. */
function summary(): string {
  const rows = DOC_FILES.map((file) => {
    const mine = plans.filter((plan) => plan.block.file === file);
    const count = (test: (plan: BlockPlan) => boolean) => mine.filter(test).length;
    return [
      file,
      count((p) => p.runs.length > 0),
      count((p) => p.typecheck),
      count((p) => p.typecheck && p.runs.length === 0),
      count((p) => p.kind === 'json' || p.kind === 'dotenv'),
      count((p) => p.kind === 'skip'),
    ];
  });
  const header = ['file', 'run', 'typechecked', 'typecheck only', 'parsed/loaded', 'not run (marked)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  return [header, ...rows].map((r) => r.map((cell, i) => String(cell).padEnd(widths[i]!)).join('  ')).join('\n');
}

describe('the doc-test markers', () => {
  it('every code block of the docs is run, checked, or marked with the reason it is not', () => {
    expect(problems).toEqual([]);
  });

  it('the parser: an unmarked shell block is an error, an unmarked ts block runs, markers are read', () => {
    const text = [
      '```sh',
      'npm test',
      '```',
      '',
      '- a list item:',
      '',
      '  ```ts',
      '  const a: number = 1;',
      '  ```',
      '',
      '<!-- doc-test: also s3; given uploads -->',
      '',
      '```ts',
      'await uploads.reconcile();',
      '```',
      '<!-- doc-test: skip -->',
      '```text',
      'x',
      '```',
      '<!-- doc-test: skip (output) -->',
      'a paragraph',
    ].join('\n');
    const { blocks, strayMarkers } = parseBlocks('x.md', text);
    expect(blocks.map((b) => [b.line, b.lang, b.code])).toEqual([
      [1, 'sh', 'npm test\n'],
      [7, 'ts', 'const a: number = 1;\n'],
      [13, 'ts', 'await uploads.reconcile();\n'],
      [17, 'text', 'x\n'],
    ]);
    expect(strayMarkers).toEqual([20]);
    const [sh, ts, given, skip] = blocks.map(planBlock);
    expect(sh).toMatchObject({ error: expect.stringContaining('x.md:1: a sh block and no doc-test marker') });
    expect(ts).toMatchObject({ kind: 'program', typecheck: true, runs: [[]] });
    expect(given).toMatchObject({ runs: [[], ['s3']], given: ['uploads'] });
    expect(skip).toMatchObject({ error: expect.stringContaining('needs a reason') });
  });
});

describe('docs TypeScript blocks pass tsc --strict (nodenext, the built package by its name)', () => {
  const checked = plans.filter((plan) => plan.typecheck);
  let errors: TypecheckError[] = [];
  beforeAll(async () => {
    const dir = path.join(tmp, 'typecheck');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'givens.ts'), GIVENS_SOURCE);
    for (const plan of checked) await writeFile(path.join(dir, `${slug(plan)}.${extensionOf(plan)}`), moduleSource(plan).source);
    ({ errors } = await typecheck(dir, ['givens.ts', ...checked.map((plan) => `${slug(plan)}.ts`)]));
  });

  /** The errors in a block's file, at their line in the Markdown file. */
  const errorsOf = (plan: BlockPlan) =>
    errors
      .filter((error) => error.file === `${slug(plan)}.ts`)
      .map((error) => `${plan.block.file}:${plan.block.line + error.line - moduleSource(plan).offset}: ${error.text}`);

  for (const plan of checked) {
    it(`${where(plan.block)} typechecks`, () => {
      expect(errorsOf(plan)).toEqual([]);
    });
  }

  it('nothing else has a type error (givens, the package types)', () => {
    const blockFiles = new Set(checked.map((plan) => `${slug(plan)}.ts`));
    expect(errors.filter((error) => !blockFiles.has(error.file)).map((e) => `${e.file}:${e.line}: ${e.text}`)).toEqual([]);
  });
});

/** Checks of a running `serve` block, by the name its marker gives. */
const PROBES: Record<string, (context: ServeContext) => Promise<void>> = {
  /** docs/events.md's receiver with our verifyWebhook: see probeReceiver; refusals name their code. */
  'webhook-receiver': (context) => probeReceiver(context, { forged: 'E_WEBHOOK_SIGNATURE', stale: 'E_WEBHOOK_TIMESTAMP', legacy: 'E_WEBHOOK_HEADER' }),
  /** docs/events.md's receiver with the standardwebhooks package: the same deliveries, the same answers. */
  'standard-webhook-receiver': (context) => probeReceiver(context),
  /** docs/operations.md's maintenance loop: a round ran and logged its counts. */
  async maintenance({ waitForOutput }) {
    await waitForOutput(/upload maintenance \{"notified":0,"skipped":0,"deleted":0,"remaining":0,"failures":\[\]\}/u, 30_000);
  },
};

/**
 * A Standard Webhooks delivery signed here by the spec's formula (not by the package): it is
 * taken, and its redelivery too (same webhook-id, new timestamp); a forged signature, a capture
 * replayed ten minutes later and a request with only the legacy header of 0.2 are refused with 401.
 */
async function probeReceiver({ port }: ServeContext, codes?: Record<'forged' | 'stale' | 'legacy', string>): Promise<void> {
  const body = JSON.stringify({ file_id: randomUUID(), original_filename: 'Quarterly Report.pdf', sha256: '0'.repeat(64) });
  const id = randomUUID();
  const key = Buffer.from(WEBHOOK_SECRET.slice('whsec_'.length), 'base64');
  const sign = (timestamp: number, withKey: Buffer = key) => `v1,${createHmac('sha256', withKey).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
  const post = (headers: Record<string, string>) =>
    fetch(`http://127.0.0.1:${port}/doorito`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-webhook-event': 'file.stored', ...headers }, body });
  const signed = (timestamp: number, signature = sign(timestamp)) => ({ 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature });
  const now = () => Math.floor(Date.now() / 1000);
  expect((await retryConnect(() => post(signed(now())))).status).toBe(204);
  expect((await post(signed(now() + 1))).status).toBe(204);
  const refusals = {
    forged: signed(now(), sign(now(), randomBytes(32))),
    stale: signed(now() - 600),
    legacy: { 'x-webhook-delivery': id, 'x-webhook-signature': createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex') },
  };
  for (const [name, headers] of Object.entries(refusals) as Array<[keyof typeof refusals, Record<string, string>]>) {
    const refused = await post(headers);
    expect(refused.status, name).toBe(401);
    if (codes !== undefined) expect(await refused.json(), name).toEqual({ code: codes[name] });
  }
}

/** fetch until the server listens (its top level has run, but listen() is asynchronous). */
async function retryConnect(request: () => Promise<Response>): Promise<Response> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

let pg: ReturnType<typeof testPool> | undefined;
afterAll(async () => {
  if (pg !== undefined) {
    const { pool, available } = await pg;
    if (available) await pool.end();
  }
});

/** A fresh database for one run, dropped afterwards. */
async function withDatabase<T>(use: (url: string) => Promise<T>): Promise<T | 'unavailable'> {
  pg ??= testPool(2);
  const { pool, available } = await pg;
  if (!available) return 'unavailable';
  const name = `doc_test_${randomBytes(5).toString('hex')}`;
  await pool.query(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(PG_TEST_URL);
    url.pathname = `/${name}`;
    return await use(url.toString());
  } finally {
    await pool.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}


async function removePrefix(env: S3TestEnv, prefix: string): Promise<void> {
  const client = rawClient(env);
  try {
    const page = await client.send(new ListObjectsV2Command({ Bucket: env.bucket, Prefix: `${prefix}/` }));
    for (const object of page.Contents ?? []) await client.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: object.Key }));
  } finally {
    client.destroy();
  }
}

function describeFailure(plan: BlockPlan, services: Service[], result: ProcessResult & { probeError?: unknown }): string | null {
  const { code, signal, timedOut } = result;
  const served = plan.serve !== null;
  // A block that handles SIGTERM must shut down cleanly; one that does not dies of the signal.
  const handlesSigterm = plan.block.code.includes("'SIGTERM'");
  const stopped = code === 0 || (served && !handlesSigterm && signal === 'SIGTERM' && code === null);
  let what: string | null = null;
  if (result.probeError !== undefined) what = `its probe failed: ${result.probeError instanceof Error ? result.probeError.message : String(result.probeError)}`;
  else if (timedOut) what = served ? 'it did not stop within 15 s of SIGTERM' : 'it did not finish in time';
  else if (!stopped) what = `it exited with ${code === null ? `signal ${String(signal)}` : `code ${code}`}`;
  if (what === null) return null;
  const tail = (text: string) => text.trim().split('\n').slice(-40).join('\n');
  return `${where(plan.block)} (${plan.block.lang}${services.length > 0 ? ` with ${services.join(' + ')}` : ''}): ${what}\n--- stdout\n${tail(result.stdout)}\n--- stderr\n${tail(result.stderr)}`;
}

describe('docs program blocks run', () => {
  let n = 0;
  for (const plan of plans) {
    for (const services of plan.runs) {
      const title = `${where(plan.block)} runs${services.length > 0 ? ` with ${services.join(' + ')}` : ''}${plan.serve === null ? '' : ', serves, stops on SIGTERM'}`;
      if (services.includes('s3') && S3 === null) {
        it.skip(`${title} (no S3 server)`, () => undefined);
        continue;
      }
      const id = ++n;
      it(title, async (context) => {
        const dir = path.join(tmp, `run-${id}-${slug(plan)}`);
        const args = await prepareRun(dir, plan);
        const prefix = `doc-test-${randomUUID()}`;
        const env: Record<string, string> = {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? dir,
          WEBHOOK_SECRET,
          ...plan.env,
          ...(services.includes('s3') && S3 !== null ? s3StorageVariables(S3, prefix) : {}),
        };
        const execute = async (): Promise<ProcessResult & { probeError?: unknown }> => {
          if (plan.serve === null) return runProcess(process.execPath, args, { cwd: dir, env, timeoutMs: 90_000 });
          const port = await freePort();
          const probeName = plan.serve.probe;
          const probe = probeName === undefined ? async () => undefined : PROBES[probeName];
          if (probe === undefined) throw new Error(`${where(plan.block)}: no probe named "${probeName}" in doc-blocks.test.ts`);
          return serveProcess(args, { cwd: dir, env: { ...env, PORT: String(port) }, port, probe });
        };
        try {
          const result = services.includes('postgres')
            ? await withDatabase((url) => {
                env.DATABASE_URL = url;
                return execute();
              })
            : await execute();
          if (result === 'unavailable') return context.skip();
          const failure = describeFailure(plan, services, result);
          if (failure !== null) throw new Error(failure);
          // With S3 chosen, nothing may have gone to local files instead.
          if (services.includes('s3')) expect(await exists(dir, 'media'), 'an S3 run wrote ./media').toBe(false);
        } finally {
          if (services.includes('s3') && S3 !== null) await removePrefix(S3, prefix);
        }
      });
    }
  }
});

describe('docs data blocks', () => {
  it("docs/configuration.md's example of the problems message is the message loadStorageConfig() throws", () => {
    const shown = plans.find((p) => p.block.file === 'docs/configuration.md' && p.block.code.startsWith('Storage configuration (s3): 2 problem(s)'));
    expect(shown, 'the text block with the example message').toBeDefined();
    expect(() => loadStorageConfig({ STORAGE_BACKEND: 's3', AWS_QUERYSTRING_EXPIRE: '7d' })).toThrow(shown!.block.code.trimEnd());
  });

  for (const plan of plans.filter((p) => p.kind === 'json')) {
    it(`${where(plan.block)} is valid JSON`, () => {
      expect(() => JSON.parse(plan.block.code) as unknown).not.toThrow();
    });
  }
  for (const plan of plans.filter((p) => p.kind === 'dotenv')) {
    it(`${where(plan.block)} is a configuration loadStorageConfig() accepts, every variable read`, () => {
      const variables = parseEnv(plan.block.code) as Record<string, string>;
      expect(Object.keys(variables).length).toBeGreaterThan(0);
      const read = new Set<string>();
      const env = new Proxy(variables, {
        get(target, name) {
          if (typeof name === 'string') read.add(name);
          return Reflect.get(target, name) as unknown;
        },
      });
      loadStorageConfig(env);
      expect(Object.keys(variables).filter((name) => !read.has(name))).toEqual([]);
    });
  }
});
