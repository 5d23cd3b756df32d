/**
 * S3Storage.save under network faults, injected by a proxy between the storage and the real
 * server (Ceph RGW, Swift): a connection reset mid-body, a response lost after the server
 * acted, a stall, an injected 503 SlowDown, an outage. For every attempt: either save()
 * resolved and the bytes read straight from the server are intact, or it rejected with a
 * typed error; and afterwards nothing else is left (no multipart upload, claim, partial or
 * orphan object).
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { isStorageError, StorageAbortedError } from '../../src/index.js';
import type { S3Storage } from '../../src/storage/s3/index.js';
import { FaultProxy, type Fault, type S3Operation } from '../helpers/fault-proxy.js';
import { PART, s3Cleanup, s3Leftovers, s3StorageFor } from '../helpers/s3-fixture.js';
import { describeS3, rawClient } from '../helpers/s3-env.js';
import { patternStream, sha256 } from '../helpers/streams.js';

const LARGE = 2 * PART + 1024 * 1024;

interface Scenario {
  op: S3Operation;
  fault: Fault;
  times?: number;
  /** A multipart save (3 parts), else one small PUT. */
  large: boolean;
  /**
   * What the save must do: a fault the SDK's retries outlast ends in a typed rejection; one they
   * absorb ends in a resolved save, also when the lost answer hid our own write behind a 412 or
   * a NoSuchUpload (the token check).
   */
  outcome: 'resolves' | 'rejects';
}

const faultsFor = (op: S3Operation, withBody: boolean): Fault[] => [
  withBody ? { kind: 'reset-after', bytes: 64 * 1024 } : { kind: 'reset' },
  { kind: 'lose-response' },
  { kind: 'status', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' },
  { kind: 'stall', ms: 2500 },
];

const SCENARIOS: Scenario[] = [
  // One fault each: the SDK retries, and the save must succeed.
  ...faultsFor('PutObject', true).map((fault) => ({ op: 'PutObject' as const, fault, large: false, outcome: 'resolves' as const })),
  ...faultsFor('Claim', false).map((fault) => ({ op: 'Claim' as const, fault, large: true, outcome: 'resolves' as const })),
  ...faultsFor('CreateMultipartUpload', false).map((fault) => ({ op: 'CreateMultipartUpload' as const, fault, large: true, outcome: 'resolves' as const })),
  ...faultsFor('UploadPart', true).map((fault) => ({ op: 'UploadPart' as const, fault, large: true, outcome: 'resolves' as const })),
  ...faultsFor('CompleteMultipartUpload', false).map((fault) => ({ op: 'CompleteMultipartUpload' as const, fault, large: true, outcome: 'resolves' as const })),
  // Faults on every attempt: the save fails, typed, and leaves nothing …
  { op: 'PutObject', fault: { kind: 'reset' }, times: Infinity, large: false, outcome: 'rejects' },
  { op: 'UploadPart', fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: Infinity, large: true, outcome: 'rejects' },
  { op: 'CreateMultipartUpload', fault: { kind: 'lose-response' }, times: Infinity, large: true, outcome: 'rejects' },
  // … except where every lost answer came after the server completed: the object is ours.
  { op: 'CompleteMultipartUpload', fault: { kind: 'lose-response' }, times: Infinity, large: true, outcome: 'resolves' },
];

const label = (s: Scenario): string =>
  `${s.op} ${s.fault.kind}${s.fault.kind === 'status' ? ` ${s.fault.status}` : ''}${s.times === Infinity ? ' (every attempt)' : ''}`;

describeS3('S3Storage.save under injected faults', (env) => {
  const client = rawClient(env);
  let proxy: FaultProxy;
  let location: string;
  let storage: S3Storage;
  const outcomes: string[] = [];

  beforeAll(async () => {
    proxy = await FaultProxy.start(env.endpoint);
  });
  afterAll(async () => {
    console.log(`fault outcomes [${env.provider}]:\n  ${outcomes.join('\n  ')}`);
    await proxy.close();
    client.destroy();
  });
  beforeEach(() => {
    location = `faults-${randomUUID()}`;
    // Short timeouts, so that a stall costs seconds, not minutes.
    storage = s3StorageFor(env, { endpoint: proxy.endpoint, location, idleTimeout: 1000, requestTimeout: 20_000, cleanupTimeout: 15_000 });
  });
  afterEach(async () => {
    proxy.clear();
    await storage.drain();
    storage.destroy();
    await s3Cleanup(client, env.bucket, `${location}/`);
  });

  const rawSha = async (key: string): Promise<string> => {
    const output = await client.send(new GetObjectCommand({ Bucket: env.bucket, Key: `${location}/${key}` }));
    return sha256(output.Body as AsyncIterable<Uint8Array>);
  };

  for (const scenario of SCENARIOS) {
    it(`${label(scenario)}: ${scenario.outcome === 'resolves' ? 'resolves with intact bytes' : 'rejects typed'}; nothing else is left`, async () => {
      const size = scenario.large ? LARGE : 1000;
      const rule = proxy.inject({ op: scenario.op, fault: scenario.fault, times: scenario.times ?? 1 });
      const result = await storage.save('f/file.bin', patternStream(size, 9)).then(
        (saved) => ({ saved }),
        (error: unknown) => ({ error }),
      );
      await storage.drain();
      proxy.clear();
      // Whatever the fault, every part's memory is back in the budget.
      expect(storage.memoryBudget.stats).toMatchObject({ used: 0, waiting: 0 });
      const left = await s3Leftovers(client, env.bucket, `${location}/`);
      if ('saved' in result) {
        expect(result.saved.size).toBe(size);
        expect(await rawSha(result.saved.key)).toBe(await sha256(patternStream(size, 9)));
        expect(left).toEqual([`object ${location}/${result.saved.key}`]);
        outcomes.push(`${label(scenario)}: resolved (fault fired ${rule.fired}×)`);
      } else {
        expect(isStorageError(result.error)).toBe(true);
        expect(result.error).toMatchObject({ key: 'f/file.bin' });
        expect(left).toEqual([]);
        outcomes.push(`${label(scenario)}: rejected ${(result.error as { code: string }).code} (fault fired ${rule.fired}×)`);
      }
      expect(rule.fired).toBeGreaterThan(0);
      expect('saved' in result ? 'resolves' : 'rejects').toBe(scenario.outcome);
    });
  }

  it('an abort during a stalled part settles before the stall ends, rejects StorageAbortedError, and leaves nothing', async () => {
    proxy.inject({ op: 'UploadPart', fault: { kind: 'stall', ms: 8000 }, after: 1 });
    const slow = s3StorageFor(env, { endpoint: proxy.endpoint, location, cleanupTimeout: 15_000 });
    const controller = new AbortController();
    const saving = slow.save('f/abort.bin', patternStream(LARGE, 3), { signal: controller.signal });
    // Abort once the stalled part is held by the proxy.
    for (let i = 0; i < 200 && !proxy.log.some((e) => e.fault === 'stall'); i += 1) await new Promise((r) => setTimeout(r, 25));
    controller.abort();
    const error = await saving.catch((e: unknown) => e);
    // Settled while the part was still stalled: the proxy had not forwarded it yet.
    const stalled = proxy.log.find((e) => e.fault === 'stall');
    expect(stalled?.status).toBeUndefined();
    expect(error).toBeInstanceOf(StorageAbortedError);
    await slow.drain();
    proxy.clear();
    expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
    slow.destroy();
  });

  it('an abort after a small PUT reached the server removes what landed', async () => {
    // The answer is held back: the object is stored, but the save is aborted before it hears so.
    proxy.inject({ op: env.provider === 'swift' ? 'PutObject' : 'PutObject', fault: { kind: 'stall-response', ms: 4000 } });
    const controller = new AbortController();
    const saving = storage.save('f/landed.txt', 'small body', { signal: controller.signal });
    for (let i = 0; i < 200 && !proxy.log.some((e) => e.fault === 'stall-response'); i += 1) await new Promise((r) => setTimeout(r, 25));
    controller.abort();
    expect(await saving.catch((e: unknown) => e)).toBeInstanceOf(StorageAbortedError);
    await storage.drain();
    proxy.clear();
    expect(await s3Leftovers(client, env.bucket, `${location}/`)).toEqual([]);
  });

  it('a 2 s outage during a multipart save: the save fails typed, and its clean-up outlasts the outage', async () => {
    let started = false;
    const source = patternStream(4 * PART, 5, (sent) => {
      if (!started && sent > PART + 512 * 1024) {
        started = true;
        void proxy.outage(2000);
      }
    });
    const result = await storage.save('f/outage.bin', source).then(
      (saved) => ({ saved }),
      (error: unknown) => ({ error }),
    );
    const left = await s3Leftovers(client, env.bucket, `${location}/`);
    if ('saved' in result) {
      expect(await rawSha(result.saved.key)).toBe(await sha256(patternStream(4 * PART, 5)));
      expect(left).toEqual([`object ${location}/${result.saved.key}`]);
      outcomes.push('outage 2 s mid-multipart: resolved (retries outlasted it)');
    } else {
      expect(isStorageError(result.error)).toBe(true);
      expect(left).toEqual([]);
      outcomes.push(`outage 2 s mid-multipart: rejected ${(result.error as { code: string }).code}, nothing left`);
    }
  });
});
