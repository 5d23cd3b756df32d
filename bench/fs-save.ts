/**
 * 4. FileSystemStorage.save of a 256 MiB generated stream vs a plain stream.pipeline into
 * fs.createWriteStream (same generated stream) and vs `cp` of a 256 MiB file. cp reads its
 * source from a file (page cache; coreutils 9 copies in the kernel with copy_file_range), the
 * others from the generator. The PassThrough row shows what one extra stream stage does: it
 * lets the generator fill the next chunk while the previous one is written (ours has such a
 * stage, its byte counter).
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { FileSystemStorage } from '../src/storage/fs/index.js';
import { patternStream } from '../test/helpers/streams.js';
import { MiB, fmt, heading, interleave, note, rate, table } from './util.js';

const SIZE = 256 * MiB;
const run = promisify(execFile);

export async function benchFsSave(dir: string): Promise<void> {
  const root = path.join(dir, 'fs-save');
  const storage = new FileSystemStorage({ location: root });
  const noSync = new FileSystemStorage({ location: root, fsync: false });
  const source = path.join(dir, 'source.bin');
  await pipeline(patternStream(SIZE, 1), createWriteStream(source));
  const target = (name: string, tag: string): string => path.join(root, `${name}-${tag}.bin`);
  const remove = (name: string) => (tag: string) => rm(target(name, tag), { force: true });
  const samples = await interleave([
    { name: 'ours', run: (tag) => storage.save(`ours-${tag}.bin`, patternStream(SIZE, 1)), after: remove('ours') },
    { name: 'nosync', run: (tag) => noSync.save(`nosync-${tag}.bin`, patternStream(SIZE, 1)), after: remove('nosync') },
    { name: 'pipeline', run: (tag) => pipeline(patternStream(SIZE, 1), createWriteStream(target('pipeline', tag))), after: remove('pipeline') },
    {
      name: 'pass',
      run: (tag) => pipeline(patternStream(SIZE, 1), new PassThrough(), createWriteStream(target('pass', tag))),
      after: remove('pass'),
    },
    { name: 'cp', run: (tag) => run('cp', [source, target('cp', tag)]), after: remove('cp') },
  ]);
  await rm(source, { force: true });
  const ours = rate(samples.get('ours') ?? [], SIZE / MiB);
  const nosync = rate(samples.get('nosync') ?? [], SIZE / MiB);
  const plain = rate(samples.get('pipeline') ?? [], SIZE / MiB);
  const pass = rate(samples.get('pass') ?? [], SIZE / MiB);
  const cp = rate(samples.get('cp') ?? [], SIZE / MiB);
  const row = (label: string, r: typeof cp): string[] => [label, fmt(r.median), fmt(r.min), fmt(r.max), `${fmt(r.median / plain.median, 3)}x`];
  heading(4, `Filesystem save, 256 MiB, in ${dir} (median of ${samples.get('ours')?.length}, MiB/s)`);
  table(
    ['variant', 'median', 'min', 'max', 'vs pipeline'],
    [
      row('FileSystemStorage.save (generated stream, fsync)', ours),
      row('FileSystemStorage.save { fsync: false }', nosync),
      row('stream.pipeline -> createWriteStream (generated)', plain),
      row('stream.pipeline -> PassThrough -> createWriteStream', pass),
      row('cp of a 256 MiB file (source from page cache)', cp),
    ],
  );
  note(`ratio ours/pipeline: ${fmt(ours.median / plain.median, 3)}x (target >= 0.9x); ours/cp: ${fmt(ours.median / cp.median, 3)}x`);
  note(`cost of fsync: ${fmt(ours.median / nosync.median, 3)}x of the throughput without it (the pipeline and cp do not fsync)`);
}
