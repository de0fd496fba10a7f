/**
 * Checks an uploaded NAR file against the narinfo that names it, streaming:
 * it must decompress (none, xz, zstd, bzip2) to exactly NarSize bytes whose
 * SHA-256 is NarHash. Decompression stops as soon as the output passes
 * NarSize, so a small file cannot make us write or hash gigabytes.
 * xz and bzip2 go through the system programs (Node has neither codec).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createZstdDecompress } from 'node:zlib';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import type { UploadCompression } from '../../shared/upload.ts';
import { PushError, rejected } from './errors.ts';

export interface NarExpectation {
  narHash: string;
  narSize: number;
}

/** The decompressed bytes of `file`, and a promise that settles when the decompressor is done. */
function decompressed(file: string, compression: UploadCompression): { out: Readable; done: Promise<void>; stop: () => void } {
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

/** Resolves when the file holds the expected NAR; rejects with a 400 PushError saying what differs. */
export async function verifyNarFile(file: string, compression: UploadCompression, want: NarExpectation): Promise<void> {
  const { out, done, stop } = decompressed(file, compression);
  const hash = createHash('sha256');
  let size = 0;
  let tooLong = false;
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      size += chunk.length;
      if (size > want.narSize) {
        tooLong = true;
        stop();
        return cb(rejected(`NAR is larger than its NarSize ${want.narSize}`));
      }
      hash.update(chunk);
      cb();
    },
  });
  const [piped, finished] = await Promise.allSettled([pipeline(out, sink), done]);
  if (tooLong) throw rejected(`NAR is larger than its NarSize ${want.narSize}`);
  // The decompressor's own verdict first (it names the codec); a codec error seen by the pipeline is the upload's fault too.
  if (finished.status === 'rejected') throw finished.reason;
  if (piped.status === 'rejected') {
    if (compression === 'none' || piped.reason instanceof PushError) throw piped.reason;
    throw rejected(`NAR file does not decompress as ${compression}: ${(piped.reason as Error).message}`);
  }
  if (size !== want.narSize) throw rejected(`NAR is ${size} bytes, narinfo says NarSize ${want.narSize}`);
  const got = formatSha256Nix32(hash.digest());
  if (got !== want.narHash) throw rejected(`NAR hash mismatch: the upload is ${got}, narinfo says ${want.narHash}`);
}
