/**
 * 6. Where the S3 save's time goes: generating the stream alone, SHA-256 of the same bytes
 * (SigV4 hashes every part's payload over http), and the three uploads of benchmark 1, each
 * with the CPU this process and the S3 server's daemons used.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { patternStream } from '../test/helpers/streams.js';
import { PART_SIZE } from './s3-bucket.js';
import { S3_SIZE, type S3SaveResult } from './s3-save.js';
import { MiB, fmt, heading, interleave, median, note, rate, table, type Sample } from './util.js';

const drain = (): Writable => new Writable({ write: (_chunk, _encoding, callback) => callback() });

export interface LocalSteps {
  generate: Sample[];
  sha256: Sample[];
}

/** (a) and (b): no server involved, so run them while the server is idle. */
export async function measureLocalSteps(): Promise<LocalSteps> {
  const part = Buffer.alloc(PART_SIZE);
  let filled = 0;
  for await (const chunk of patternStream(PART_SIZE, 1)) filled += (chunk as Buffer).copy(part, filled);
  const samples = await interleave([
    { name: 'generate', run: () => pipeline(patternStream(S3_SIZE, 1), drain()) },
    {
      name: 'sha256',
      run: async () => {
        for (let done = 0; done < S3_SIZE; done += PART_SIZE) createHash('sha256').update(part).digest();
      },
    },
  ]);
  return { generate: samples.get('generate') ?? [], sha256: samples.get('sha256') ?? [] };
}

export function reportBreakdown(local: LocalSteps, s3: S3SaveResult): void {
  const rows: Array<[string, Sample[]]> = [
    ['(a) generate the stream, drain to nowhere', local.generate],
    ['(b) sha256 of 256 MiB (8 MiB parts, in memory)', local.sha256],
    ['(c) raw lib-storage Upload', s3.raw],
    ['(d) S3Storage.save', s3.ours],
    ['(e) one streamed PutObject, UNSIGNED-PAYLOAD', s3.unsigned],
  ];
  const server = (list: Sample[]): string => {
    const known = list.map((s) => s.serverMs).filter((v): v is number => v !== undefined);
    return known.length === list.length && known.length > 0 ? fmt(median(known), 0) : 'n/a';
  };
  heading(6, `Where the S3 save's time goes, 256 MiB (medians of ${s3.ours.length}; CPU in ms)`);
  table(
    ['step', 'wall ms', 'MiB/s', 'our CPU', 'server CPU'],
    rows.map(([label, list]) => [
      label,
      fmt(median(list.map((s) => s.ms)), 0),
      fmt(rate(list, S3_SIZE / MiB).median),
      fmt(median(list.map((s) => s.cpuMs)), 0),
      server(list),
    ]),
  );
  note('our CPU = this process, all threads; server CPU = radosgw + ceph-osd + ceph-mon; 2 cores shared by all');
}
