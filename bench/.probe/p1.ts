import { createHash } from 'node:crypto';
import { patternStream } from '../../test/helpers/streams.js';
const SIZE = 256 * 1024 * 1024;
for (let r = 0; r < 3; r++) {
  let t = performance.now();
  let n = 0;
  for await (const c of patternStream(SIZE, r)) n += (c as Buffer).length;
  const gen = performance.now() - t;
  const buf = Buffer.alloc(8 * 1024 * 1024, 7);
  t = performance.now();
  for (let i = 0; i < 32; i++) createHash('sha256').update(buf).digest();
  const sha = performance.now() - t;
  console.log(n, 'gen MiB/s', (256 / gen * 1000).toFixed(0), 'sha MiB/s', (256 / sha * 1000).toFixed(0));
}
