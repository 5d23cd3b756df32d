/**
 * 10. The in-memory upload store as it fills: per-upload time of `UploadService.createUploadFile`
 * (MemoryStorage + MemoryUploadStore, 1 KiB each, one webhook endpoint so every upload creates a
 * delivery) on a store holding 100 records vs one holding 10,000, and of the store's calls of an
 * upload alone (MemoryStorage's save is most of the service's time, and would hide the store's
 * growth). A transaction must cost what it changes, not what is stored, so the ratios should
 * stay near 1 (goal <= 1.5x). Needs no S3 server. Each run starts from a freshly filled store,
 * so both sizes hold the same while measured.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { MemoryStorage } from '../src/storage/memory/index.js';
import { MemoryUploadStore, UploadService, type UnitOfWork, type UploadFile } from '../src/index.js';
import { ROUNDS, fmt, heading, interleave, median, note, table, type Sample } from './util.js';

/** Uploads timed per run. */
const UPLOADS = Number.parseInt(process.env['BENCH_MEMORY_UPLOADS'] ?? '200', 10) || 200;
const SIZES = [100, 10_000] as const;
const CONTENT = randomBytes(1024);

/** What the bench needs of a store: `MemoryUploadStore`, or an older build of it to compare. */
export type BenchedStore = UnitOfWork & Pick<MemoryUploadStore, 'repository' | 'createWebhookEndpoint'>;

/** `count` stored files, each with its `file.stored` event (and a delivery), 1000 to a transaction; not timed. */
async function fill(store: BenchedStore, count: number): Promise<void> {
  for (let done = 0; done < count; done += 1000) {
    await store.transaction(async (tx) => {
      for (let i = done; i < Math.min(count, done + 1000); i += 1) {
        const now = new Date();
        const file: UploadFile = {
          id: randomUUID(),
          storageKey: `uploads/2026/11/prefill-${i}.txt`,
          originalFilename: `prefill-${i}.txt`,
          contentType: 'text/plain',
          sizeBytes: CONTENT.length,
          sha256: randomBytes(32).toString('hex'),
          metadata: { source: 'bench' },
          status: 'stored',
          createdAt: now,
          updatedAt: now,
        };
        await tx.repository.createFile(file);
        await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: file.id, eventType: 'file.stored', payload: { file_id: file.id, storage_key: file.storageKey } });
      }
    });
  }
}

/** A new store holding `count` records, and a service over it. */
async function filled(open: () => BenchedStore, count: number): Promise<{ store: BenchedStore; service: UploadService }> {
  const store = open();
  await store.createWebhookEndpoint({ url: 'http://127.0.0.1:9/hooks/doorito' });
  await fill(store, count);
  return { store, service: new UploadService({ storage: new MemoryStorage(), repository: store.repository, unitOfWork: store }) };
}

/** The store's part of one upload, as the service makes the calls: record, claim, move to stored with the event. */
async function storeCalls(store: BenchedStore, name: string): Promise<void> {
  const now = new Date();
  const file: UploadFile = {
    id: randomUUID(),
    storageKey: `uploads/2026/11/${name}`,
    originalFilename: name,
    contentType: 'text/plain',
    sizeBytes: 0,
    sha256: '',
    metadata: {},
    status: 'uploading',
    createdAt: now,
    updatedAt: now,
  };
  await store.repository.createFile(file);
  if (!(await store.repository.claimStorageKey(file.id, file.storageKey, now))) throw new Error(`${name}: key taken`);
  await store.transaction(async (tx) => {
    const stored = await tx.repository.updateFile(file.id, { status: 'stored', sizeBytes: CONTENT.length, sha256: 'ff' }, { expectedStatus: 'uploading', now });
    if (stored === undefined) throw new Error(`${name}: no longer uploading`);
    await tx.outbox.emit({ aggregateType: 'UploadFile', aggregateId: file.id, eventType: 'file.stored', payload: { file_id: file.id, storage_key: file.storageKey } });
  });
}

const PATHS = {
  'UploadService.createUploadFile': async ({ service }: { service: UploadService }, name: string) => {
    const file = await service.createUploadFile({ content: CONTENT, filename: name, contentType: 'text/plain' });
    if (file.status !== 'stored') throw new Error(`${name}: ${file.status} ${file.errorMessage ?? ''}`);
  },
  "the store's calls alone": async ({ store }: { store: BenchedStore }, name: string) => storeCalls(store, name),
} as const;

/**
 * Print section 8. `open` makes an empty store (default `new MemoryUploadStore(...)`); pass
 * another build's constructor to compare implementations.
 */
export async function benchMemoryStore(open: () => BenchedStore = () => new MemoryUploadStore({ allowPrivateNetworks: true }), label = 'MemoryUploadStore'): Promise<void> {
  const variants = Object.entries(PATHS).flatMap(([path, upload]) => SIZES.map((size) => ({ path, upload, size, name: `${path} @ ${size}` })));
  const filledFor = new Map<string, Awaited<ReturnType<typeof filled>>>();
  for (const v of variants) filledFor.set(v.name, await filled(open, v.size));
  const samples = await interleave(
    variants.map((v) => ({
      name: v.name,
      run: async (tag: string) => {
        const target = filledFor.get(v.name) as Awaited<ReturnType<typeof filled>>;
        for (let i = 0; i < UPLOADS; i += 1) await v.upload(target, `report-${tag}-${i}.txt`);
      },
      // The next run starts from the same number of records again.
      after: async () => {
        filledFor.set(v.name, await filled(open, v.size));
      },
    })),
  );
  heading(10, `${label} as it fills: ${UPLOADS} uploads of 1 KiB per run, one webhook endpoint (median of ${ROUNDS}, ms per upload)`);
  const rows: string[][] = [];
  const ratios: string[] = [];
  for (const path of Object.keys(PATHS)) {
    const medians = SIZES.map((size) => {
      const values = (samples.get(`${path} @ ${size}`) ?? []).map((s: Sample) => s.ms / UPLOADS);
      rows.push([path, size.toLocaleString('en-US'), fmt(median(values), 3), fmt(Math.min(...values), 3), fmt(Math.max(...values), 3)]);
      return median(values);
    });
    ratios.push(`${path}: ${fmt((medians[1] as number) / (medians[0] as number), 2)}x`);
  }
  table(['path', 'records', 'median', 'min', 'max'], rows);
  note(`ratio ${SIZES[1].toLocaleString('en-US')}/${SIZES[0]} records (goal <= 1.5x): ${ratios.join('; ')}`);
}
