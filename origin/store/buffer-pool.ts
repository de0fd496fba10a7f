/**
 * Full-size read buffers for NAR streaming, handed back by the transport once
 * the socket is done with them (`write`'s callback). Reusing them spares the GC
 * most of the work of streaming large files, and keeps memory flat when many
 * downloads start and stop. Bounded: at most MAX_POOLED buffers are kept.
 */
export const CHUNK = 1024 * 1024;
const MAX_POOLED = 32;
const pool: Buffer[] = [];
const pooled = new WeakSet<Buffer>();

/** A CHUNK-sized buffer, reused if one is free. Its contents are garbage. */
export function takeChunk(): Buffer {
  const b = pool.pop();
  if (b) return b;
  const fresh = Buffer.allocUnsafeSlow(CHUNK);
  pooled.add(fresh);
  return fresh;
}

/** Gives a chunk back for reuse; only whole buffers made by takeChunk() are kept. */
export function recycleChunk(b: Buffer): void {
  if (b.length === CHUNK && b.byteOffset === 0 && b.buffer.byteLength === CHUNK && pool.length < MAX_POOLED && pooled.has(b)) pool.push(b);
}
