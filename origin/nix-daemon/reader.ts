/**
 * A ByteSource over a readable stream (the daemon's socket or stdout): bytes
 * are queued as they arrive and handed out in exact amounts. One reader at a
 * time (the connection runs one operation at a time). At the end of the
 * stream a pending or later read fails with `endError()`'s message.
 */
import type { Readable } from 'node:stream';
import type { ByteSource } from './wire.ts';

export class StreamReader implements ByteSource {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiting: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;

  private readonly endError: () => Error;

  constructor(stream: Readable, endError: () => Error) {
    this.endError = endError;
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.wake();
    });
    const end = (e?: Error) => {
      if (this.ended) return;
      this.ended = e ?? this.endError();
      this.wake();
    };
    stream.once('end', () => end());
    stream.once('close', () => end());
    stream.once('error', (e) => end(new Error(`${this.endError().message} (${e.message})`)));
  }

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.length;
  }

  read(n: number): Promise<Buffer> {
    if (this.waiting) return Promise.reject(new Error('StreamReader: concurrent reads'));
    if (this.length >= n) return Promise.resolve(this.take(n));
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
    });
  }

  private wake(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.length >= w.n) {
      this.waiting = undefined;
      w.resolve(this.take(w.n));
    } else if (this.ended) {
      this.waiting = undefined;
      w.reject(this.ended);
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      this.length -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
}
