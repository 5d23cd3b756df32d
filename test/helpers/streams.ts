import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

const CHUNK = 64 * 1024;

function chunkFor(seed: number, index: number, length: number): Buffer {
  const chunk = Buffer.allocUnsafe(length);
  // Cheap deterministic bytes: every chunk differs by seed and position.
  let x = (seed * 2654435761 + index * 40503 + 1) >>> 0;
  for (let i = 0; i < length; i += 4) {
    x = (x * 1664525 + 1013904223) >>> 0;
    chunk.writeUInt32LE(x, i);
  }
  return chunk;
}

/**
 * A generated stream of `size` bytes, produced on demand (never held whole), deterministic
 * for a seed. `onChunk` sees the running total after each chunk is handed out.
 */
export function patternStream(size: number, seed = 0, onChunk?: (sent: number) => void): Readable {
  let sent = 0;
  let index = 0;
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const length = Math.min(CHUNK, size - sent);
      const chunk = chunkFor(seed, index, CHUNK).subarray(0, length);
      index += 1;
      sent += length;
      this.push(chunk);
      onChunk?.(sent);
    },
  });
}

/** `size` zero-ish bytes. */
export const bytesOf = (size: number): Buffer => Buffer.alloc(size, 0x61);

/** Hex sha256 of a stream. */
export async function sha256(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest('hex');
}

/** Read a (small) stream whole. */
export async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}
