/**
 * Checks an uploaded NAR file against the narinfo that names it, streaming:
 * it must decompress (none, xz, zstd, bzip2) to exactly NarSize bytes whose
 * SHA-256 is NarHash. Decompression stops as soon as the output passes
 * NarSize, so a small file cannot make us write or hash gigabytes.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import type { UploadCompression } from '../../shared/upload.ts';
import { decompressed } from './decompress.ts';
import { PushError, rejected } from './errors.ts';

export interface NarExpectation {
  narHash: string;
  narSize: number;
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
