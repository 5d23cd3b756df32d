/**
 * Cutting a save's content into multipart parts, and uploading them a few at a time.
 */
import type { NormalizedContent } from '../../content.js';

/**
 * The content as parts of exactly `partSize` bytes (the last one shorter, and one empty part
 * for empty content). Bytes already in memory are sliced, not copied; a stream is read as the
 * parts are taken, so at most one part is being filled at a time.
 */
export async function* readParts(
  source: NormalizedContent,
  partSize: number,
  onProgress: ((bytes: number) => void) | undefined,
): AsyncGenerator<Buffer, void, undefined> {
  if (source.kind === 'bytes') {
    const { bytes } = source;
    for (let offset = 0; offset < bytes.length || offset === 0; offset += partSize) {
      yield bytes.subarray(offset, Math.min(bytes.length, offset + partSize));
      if (offset + partSize >= bytes.length) return;
    }
    return;
  }
  let chunks: Buffer[] = [];
  let size = 0;
  let total = 0;
  let yielded = false;
  const take = (length: number): Buffer => {
    const part = chunks.length === 1 && chunks[0]?.length === length ? chunks[0] : Buffer.concat(chunks, length);
    chunks = [];
    size = 0;
    yielded = true;
    return part;
  };
  for await (const chunk of source.stream as AsyncIterable<Buffer | string>) {
    let buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += buffer.length;
    onProgress?.(total);
    while (size + buffer.length >= partSize) {
      const room = partSize - size;
      chunks.push(buffer.subarray(0, room));
      buffer = buffer.subarray(room);
      yield take(partSize);
    }
    if (buffer.length > 0) {
      chunks.push(buffer);
      size += buffer.length;
    }
  }
  if (size > 0 || !yielded) yield take(size);
}

/**
 * Upload `parts` with at most `queueSize` in flight and the next one read ahead (backpressure
 * on the source beyond that). On the first failure the rest are cancelled through
 * `cancel`, and this rejects only after every part in flight has settled: an
 * AbortMultipartUpload sent earlier would leave the stragglers' parts stored.
 */
export async function uploadAll(
  parts: AsyncIterator<Buffer>,
  queueSize: number,
  upload: (partNumber: number, body: Buffer) => Promise<string | undefined>,
  cancel: (reason: unknown) => void,
): Promise<Array<{ PartNumber: number; ETag: string | undefined }>> {
  const done: Array<{ PartNumber: number; ETag: string | undefined }> = [];
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    if (failure !== undefined) return;
    failure = { error };
    cancel(error);
  };
  let partNumber = 0;
  try {
    while (failure === undefined) {
      // Read the next part while the queue is full, so it is ready when a slot frees up: at
      // most queueSize + 1 parts in memory.
      const next = await parts.next();
      if (next.done === true) break;
      while (inFlight.size >= queueSize && failure === undefined) await Promise.race(inFlight);
      if (failure !== undefined) break;
      partNumber += 1;
      const number = partNumber;
      const task = upload(number, next.value).then(
        (etag) => {
          done.push({ PartNumber: number, ETag: etag });
        },
        fail,
      );
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    }
  } catch (error) {
    fail(error);
  }
  await Promise.allSettled([...inFlight]);
  if (failure !== undefined) {
    await parts.return?.(undefined);
    throw failure.error;
  }
  return done.sort((a, b) => a.PartNumber - b.PartNumber);
}
