/**
 * The NAR inside an uploaded file (none, xz, zstd, bzip2), streamed: zstd in
 * Node, xz and bzip2 through the system programs (Node has neither codec).
 * `stop()` ends the work early (the reader has seen enough, or too much).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createZstdDecompress } from 'node:zlib';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatSha256Nix32 } from '../../shared/hash.ts';
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
    const z = createZstdDecompress({ chunkSize: 256 * 1024 }); // not 16 KiB: a callback per 16 KiB doubled the time of a large NAR
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

export interface NarExpectation {
  /** `sha256:<nix32>`, as a checked narinfo has it. */
  narHash: string;
  narSize: number;
}

/** The verdict on a NAR's size and SHA-256 (400 saying what differs), however it was read. */
export function checkDigest(size: number, sha256: Buffer, want: NarExpectation): void {
  if (size !== want.narSize) throw rejected(`NAR is ${size} bytes, narinfo says NarSize ${want.narSize}`);
  const got = formatSha256Nix32(sha256);
  if (got !== want.narHash) throw rejected(`NAR hash mismatch: the upload is ${got}, narinfo says ${want.narHash}`);
}

/**
 * The NAR of `file` as chunks, ending with an error if it is not exactly NarSize bytes with NarHash or
 * does not decompress. The last chunk is held back until the whole NAR is checked, so a daemon fed from
 * it never sees a complete wrong NAR: a large upload is checked while it is imported, in one pass.
 */
export async function* narChunks(file: string, compression: UploadCompression, want: NarExpectation): AsyncGenerator<Buffer> {
  const d = decompressed(file, compression);
  d.done.catch(() => {});
  const hash = createHash('sha256');
  let size = 0;
  let held: Buffer | undefined;
  try {
    try {
      for await (const chunk of d.out as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > want.narSize) throw rejected(`NAR is larger than its NarSize ${want.narSize}`);
        hash.update(chunk);
        if (held) yield held;
        held = chunk;
      }
    } catch (e) {
      if (e instanceof PushError) throw e;
      // The codec failed: its own verdict names it.
      await d.done;
      throw compression === 'none' ? e : rejected(`NAR file does not decompress as ${compression}: ${(e as Error).message}`);
    }
    await d.done;
    checkDigest(size, hash.digest(), want);
    if (held) yield held;
  } finally {
    d.stop();
  }
}
