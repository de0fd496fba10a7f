/**
 * The NAR inside an uploaded file (none, xz, zstd, bzip2), streamed: zstd in
 * Node, xz and bzip2 through the system programs (Node has neither codec).
 * `stop()` ends the work early (the reader has seen enough, or too much).
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { createZstdDecompress } from 'node:zlib';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { UploadCompression } from '../../shared/upload.ts';
import { PushError, rejected } from './errors.ts';

export interface Decompressed {
  out: Readable;
  /** Settles when the decompressor is done; rejects (400) when the file does not decompress. */
  done: Promise<void>;
  stop: () => void;
}

export function decompressed(file: string, compression: UploadCompression): Decompressed {
  const input = createReadStream(file, { highWaterMark: 1024 * 1024 });
  if (compression === 'none') return { out: input, done: Promise.resolve(), stop: () => input.destroy() };
  if (compression === 'zstd') {
    const z = createZstdDecompress();
    const done = pipeline(input, z).catch((e: Error) => {
      throw rejected(`NAR file does not decompress as zstd: ${e.message}`);
    });
    return { out: z, done, stop: () => input.destroy() };
  }
  const program = compression === 'xz' ? 'xz' : 'bzip2';
  const child = spawn(program, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err.length < 400 ? (err += d) : undefined));
  input.pipe(child.stdin);
  child.stdin.on('error', () => {}); // EPIPE when the program stops early (bad data, or we killed it)
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run ${program}: ${e.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0 || signal === 'SIGTERM') resolve();
      else reject(rejected(`NAR file does not decompress as ${compression}: ${err.trim().split('\n')[0] || `${program} exited with ${code}`}`));
    });
  });
  return { out: child.stdout, done, stop: () => child.kill('SIGTERM') };
}

/**
 * The NAR of `file` as chunks, ending with an error if it is not exactly `narSize`
 * bytes or does not decompress (so a daemon fed from it never sees a complete wrong NAR).
 */
export async function* narChunks(file: string, compression: UploadCompression, narSize: number): AsyncGenerator<Buffer> {
  const d = decompressed(file, compression);
  d.done.catch(() => {});
  let size = 0;
  try {
    try {
      for await (const chunk of d.out as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > narSize) throw rejected(`NAR is larger than its NarSize ${narSize}`);
        yield chunk;
      }
    } catch (e) {
      if (e instanceof PushError) throw e;
      // The codec failed: its own verdict names it.
      await d.done;
      throw compression === 'none' ? e : rejected(`NAR file does not decompress as ${compression}: ${(e as Error).message}`);
    }
    await d.done;
    if (size !== narSize) throw rejected(`NAR is ${size} bytes, narinfo says NarSize ${narSize}`);
  } finally {
    d.stop();
  }
}
