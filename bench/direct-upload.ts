/**
 * 13. Direct uploads of 128 MiB, against a raw SDK PutObject of the same bytes, on the same S3
 * server, interleaved round by round:
 *   (a) raw SDK `PutObjectCommand` (Buffer body, ContentLength), its own S3Client;
 *   (b) `storage.presignUpload()`, then Node's fetch PUTs the bytes to the URL;
 *   (c) the example portal, proxied: `POST /uploads`, multipart/form-data through the app;
 *   (d) the portal, direct: `POST /uploads/direct`, the bytes by fetch to the presigned URL(s),
 *       then `POST /uploads/:id/complete` — as multipart (the portal's choice at 128 MiB),
 *       as one PUT (`method: 'put'`), as one PUT declaring `md5`, and, on a second portal with
 *       `FILE_UPLOAD_DIRECT_VERIFY=etag`, as one PUT declaring `md5` and `sha256` (complete
 *       takes the server's MD5 check and reads nothing back).
 * Plus the portal process's CPU time (utime + stime from /proc/<pid>/stat) per upload and
 * per MiB, split for (d) into initiate + signing, the transfer, and complete.
 *
 * The bytes are one random 128 MiB Buffer, made once; every variant sends that Buffer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Storage } from '../src/storage/s3/index.js';
import { rawClient, s3Variables } from '../test/helpers/s3-client.js';
import { startPortal, type Portal } from '../test/helpers/portal.js';
import { MiB, ROUNDS, fmt, heading, interleave, median, note, rate, table, type S3Settings, type Sample } from './util.js';

const SIZE = 128 * MiB;
const TYPE = 'application/octet-stream';
/** Parts in flight at once for a multipart direct upload (the library's own queue size; Uppy's default is 6). */
const PART_CONCURRENCY = 4;
/** Initiate-and-sign cycles measured back to back, for a signing cost above the 10 ms tick. */
const SIGN_CYCLES = 40;
const PORTAL_PREFIX = 'direct-upload-portal';
const requestHandler = { connectionTimeout: 5_000, requestTimeout: 120_000, throwOnRequestTimeout: true };
/**
 * Untimed pause after each upload's clean-up. RGW frees deleted objects only by garbage
 * collection (after 10 s, every 10 s): without a pause the OSD's memstore held ~4 GiB of deleted
 * bytes at the peak of a 5-round run, with 4 s about 1.2 GiB; the pause keeps it near 1 GiB.
 */
const SETTLE_MS = 6_000;
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (ms, user + system, all threads) of a process, from /proc/<pid>/stat. */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

async function ok(response: Response, what: string): Promise<Response> {
  if (!response.ok) throw new Error(`${what} answered ${response.status}: ${(await response.text()).slice(0, 500)}`);
  return response;
}

async function postJson<T>(url: string, body: unknown): Promise<T> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return (await (await ok(response, `POST ${new URL(url).pathname}`)).json()) as T;
}

/** (c): one multipart/form-data POST of the bytes, streamed with node:http. */
function proxiedUpload(base: string, bytes: Buffer, filename: string): Promise<void> {
  const boundary = `----doorito-direct-${randomBytes(6).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: ${TYPE}\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname, port, method: 'POST', path: '/uploads', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + bytes.length + tail.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`POST /uploads answered ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 500)}`))));
      },
    );
    req.on('error', reject);
    req.write(head);
    req.write(bytes);
    req.end(tail);
  });
}

type Target = { method: 'PUT'; url: string; headers: Record<string, string> } | { method: 'multipart'; part_size: number; part_count: number };
interface Created {
  file: { id: string };
  upload: Target;
}
interface SignedPart {
  part_number: number;
  size: number;
  url: string;
  headers: Record<string, string>;
}

/** Portal CPU (ms) of one direct upload, by step. */
interface DirectCpu {
  method: string;
  sign: number;
  transfer: number;
  complete: number;
  transferMs: number;
  completeMs: number;
}

interface DirectOptions {
  method?: 'put';
  md5?: string;
  sha256?: string;
}

/** (d): initiate, (multipart: sign every part), send the bytes by fetch, complete. */
async function directUpload(portal: Portal, pid: number, bytes: Buffer, filename: string, options: DirectOptions): Promise<DirectCpu> {
  const t0 = cpuMsOf(pid);
  const created = await postJson<Created>(`${portal.url}/uploads/direct`, { filename, size: bytes.length, content_type: TYPE, ...options });
  const { id } = created.file;
  const upload = created.upload;
  let puts: Array<{ url: string; headers: Record<string, string>; body: Buffer }>;
  if (upload.method === 'PUT') {
    puts = [{ url: upload.url, headers: upload.headers, body: bytes }];
  } else {
    const numbers = Array.from({ length: upload.part_count }, (_, i) => i + 1);
    const { parts } = await postJson<{ parts: SignedPart[] }>(`${portal.url}/uploads/${id}/parts`, { part_numbers: numbers });
    puts = parts.map((p) => {
      const start = (p.part_number - 1) * upload.part_size;
      return { url: p.url, headers: p.headers, body: bytes.subarray(start, start + p.size) };
    });
  }
  const t1 = cpuMsOf(pid);
  const sending = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let put = puts[next++]; put !== undefined; put = puts[next++]) {
      await ok(await fetch(put.url, { method: 'PUT', headers: put.headers, body: put.body }), 'the presigned PUT');
    }
  };
  await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, puts.length) }, worker));
  const t2 = cpuMsOf(pid);
  const transferMs = performance.now() - sending;
  const started = performance.now();
  const stored = await postJson<{ status: string }>(`${portal.url}/uploads/${id}/complete`, {});
  const completeMs = performance.now() - started;
  if (stored.status !== 'stored') throw new Error(`complete of ${id} left it ${stored.status}`);
  const t3 = cpuMsOf(pid);
  return { method: upload.method === 'PUT' ? 'one PUT' : `multipart, ${upload.part_count} × ${upload.part_size / MiB} MiB`, sign: t1 - t0, transfer: t2 - t1, complete: t3 - t2, transferMs, completeMs };
}

/** Portal CPU per upload (ms) of initiate (+ signing every part), SIGN_CYCLES back to back; each then aborted. */
async function signingCost(portal: Portal, pid: number, options: DirectOptions): Promise<{ msPerUpload: number; method: string }> {
  const ids: string[] = [];
  let method = '';
  const before = cpuMsOf(pid);
  for (let i = 0; i < SIGN_CYCLES; i += 1) {
    const { file, upload } = await postJson<Created>(`${portal.url}/uploads/direct`, { filename: `sign-${i}.bin`, size: SIZE, content_type: TYPE, ...options });
    ids.push(file.id);
    method = upload.method;
    if (upload.method === 'multipart') {
      await postJson(`${portal.url}/uploads/${file.id}/parts`, { part_numbers: Array.from({ length: upload.part_count }, (_, n) => n + 1) });
    }
  }
  const msPerUpload = (cpuMsOf(pid) - before) / SIGN_CYCLES;
  for (const id of ids) await ok(await fetch(`${portal.url}/uploads/${id}/direct`, { method: 'DELETE' }), 'DELETE /uploads/:id/direct');
  return { msPerUpload, method };
}

export async function benchDirectUpload(settings: S3Settings, storage: S3Storage): Promise<void> {
  const bucket = storage.bucket;
  const bytes = randomBytes(SIZE);
  const md5 = createHash('md5').update(bytes).digest('base64');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const raw = rawClient(settings, { requestHandler });
  const removeObjects = async (prefix: string): Promise<void> => {
    const keys: string[] = [];
    for await (const entry of storage.list(`${prefix}/`)) keys.push(entry.key);
    await storage.deleteMany(keys);
  };
  const removePortalObjects = async (): Promise<void> => {
    await removeObjects(PORTAL_PREFIX);
    await settle();
  };
  const portalEnv = {
    STORAGE_BACKEND: 's3',
    ...s3Variables(settings, bucket),
    AWS_LOCATION: PORTAL_PREFIX,
    FILE_UPLOAD_MAX_SIZE: String(256 * MiB),
    WEBHOOK_DEMO: 'off',
    SWEEP_INTERVAL_SECONDS: '3600',
    RELAY_POLL_INTERVAL_MS: '2000',
  };
  const portal = await startPortal(portalEnv);
  // The same, but complete trusts the server's MD5 check when md5 and sha256 are declared.
  const etagPortal = await startPortal({ ...portalEnv, FILE_UPLOAD_DIRECT_VERIFY: 'etag' });
  try {
    const pidOf = (p: Portal): number => {
      if (p.child.pid === undefined) throw new Error('the portal has no pid');
      return p.child.pid;
    };
    const pid = pidOf(portal);
    const proxiedCpu: number[] = [];
    const direct = new Map<string, DirectCpu[]>();
    const portalVariant = (name: string, options: DirectOptions, via = portal) => ({
      name,
      run: async (tag: string) => {
        const cpu = await directUpload(via, pidOf(via), bytes, `${name}-${tag}.bin`, options);
        if (tag !== 'w') direct.set(name, [...(direct.get(name) ?? []), cpu]);
      },
      after: removePortalObjects,
    });
    const samples = await interleave([
      {
        name: 'a',
        run: (tag) => raw.send(new PutObjectCommand({ Bucket: bucket, Key: `direct-upload/raw-${tag}.bin`, Body: bytes, ContentLength: SIZE, ContentType: TYPE })),
        after: async (tag) => {
          await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: `direct-upload/raw-${tag}.bin` }));
          await settle();
        },
      },
      {
        name: 'b',
        run: async (tag) => {
          const target = await storage.presignUpload(`direct-upload/presigned-${tag}.bin`, { contentType: TYPE, size: SIZE });
          await ok(await fetch(target.url, { method: target.method, headers: target.headers, body: bytes }), 'the presigned PUT');
        },
        after: async (tag) => {
          await storage.delete(`direct-upload/presigned-${tag}.bin`);
          await settle();
        },
      },
      {
        name: 'c',
        run: async (tag) => {
          const before = cpuMsOf(pid);
          await proxiedUpload(portal.url, bytes, `proxied-${tag}.bin`);
          if (tag !== 'w') proxiedCpu.push(cpuMsOf(pid) - before);
        },
        after: removePortalObjects,
      },
      portalVariant('d-auto', {}),
      portalVariant('d-put', { method: 'put' }),
      portalVariant('d-put-md5', { method: 'put', md5 }),
      portalVariant('d-put-etag', { method: 'put', md5, sha256 }, etagPortal),
    ]);
    const signMultipart = await signingCost(portal, pid, {});
    const signPut = await signingCost(portal, pid, { method: 'put' });
    report(samples, proxiedCpu, direct, { multipart: signMultipart.msPerUpload, put: signPut.msPerUpload });
  } finally {
    await portal.stop();
    await etagPortal.stop();
    for (const prefix of [PORTAL_PREFIX, 'direct-upload']) {
      await removeObjects(prefix).catch((error: unknown) => console.error(`direct-upload: could not remove the objects under ${prefix}/: ${String(error)}`));
    }
    raw.destroy();
  }
}

function report(samples: Map<string, Sample[]>, proxiedCpu: number[], direct: Map<string, DirectCpu[]>, signing: { multipart: number; put: number }): void {
  const mib = SIZE / MiB;
  const base = rate(samples.get('a') ?? [], mib).median;
  const method = (name: string): string => direct.get(name)?.[0]?.method ?? '?';
  const labels: Array<[string, string]> = [
    ['a', '(a) raw SDK PutObjectCommand, one PUT'],
    ['b', '(b) presignUpload() + fetch PUT'],
    ['c', '(c) portal, proxied: POST /uploads'],
    ['d-auto', `(d) portal, direct, auto (${method('d-auto')}) + complete`],
    ['d-put', `(d) portal, direct, method put (${method('d-put')}) + complete`],
    ['d-put-md5', `(d) portal, direct, put + md5 declared + complete`],
    ['d-put-etag', `(d) portal, direct, put + md5 + sha256 declared, verify etag + complete`],
  ];
  heading(13, `Direct uploads: 128 MiB, one random Buffer, S3 on Ceph RGW (median of ${ROUNDS} rounds)`);
  const perMiB = (values: Array<number | undefined>): string => {
    const known = values.filter((v): v is number => v !== undefined);
    return known.length === 0 ? '?' : fmt(median(known) / mib, 2);
  };
  table(
    ['variant', 'MiB/s', 'min', 'max', '÷ (a)', 'bench CPU ms/MiB', 'S3 server CPU ms/MiB'],
    labels.map(([name, label]) => {
      const list = samples.get(name) ?? [];
      const r = rate(list, mib);
      return [label, fmt(r.median), fmt(r.min), fmt(r.max), `${fmt(r.median / base, 2)}×`, perMiB(list.map((s) => s.cpuMs)), perMiB(list.map((s) => s.serverMs))];
    }),
  );
  note('');
  note(`The portal process's CPU (utime + stime, /proc/<pid>/stat, ${1000 / CLK_TCK} ms ticks), median per upload of ${mib} MiB:`);
  const dash = (value: number | undefined, digits = 0): string => (value === undefined ? '—' : fmt(value, digits));
  const rows = [['(c) proxied', '—', '—', '—', fmt(median(proxiedCpu), 0), fmt(median(proxiedCpu) / mib, 2), '—', '—']];
  for (const [name, label] of labels.slice(3)) {
    const list = direct.get(name) ?? [];
    const pick = (f: (c: DirectCpu) => number): number | undefined => (list.length === 0 ? undefined : median(list.map(f)));
    const total = pick((c) => c.sign + c.transfer + c.complete);
    rows.push([
      label.replace(' + complete', ''),
      dash(pick((c) => c.sign)),
      dash(pick((c) => c.transfer)),
      dash(pick((c) => c.complete)),
      dash(total),
      dash(total === undefined ? undefined : total / mib, 2),
      dash(pick((c) => (mib * 1000) / c.transferMs), 1),
      dash(pick((c) => c.completeMs / 1000), 2),
    ]);
  }
  table(['upload', 'initiate + sign (ms)', 'during the transfer (ms)', 'complete (ms)', 'total (ms)', 'ms/MiB', 'transfer alone (MiB/s)', 'complete wall (s)'], rows);
  note(`initiate + sign alone, ${SIGN_CYCLES} back to back (each then aborted): multipart ${fmt(signing.multipart, 1)} ms per upload, PUT ${fmt(signing.put, 1)} ms per upload`);
  note('complete HEADs the object and reads it back once to hash it (SHA-256; MD5 only when one was declared and no MD5 ETag proves it), except with verify etag: the servers here verify no SHA-256 checksum');
}
