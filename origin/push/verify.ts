/**
 * Checks an uploaded NAR file against the narinfo that names it: it must
 * decompress (none, xz, zstd, bzip2) to exactly NarSize bytes whose SHA-256
 * is NarHash. Decompression stops as soon as the output passes NarSize, so a
 * small file cannot make us write or hash gigabytes.
 *
 * A small file (most paths of a closure) is read once and checked in memory,
 * and its NAR is handed back for the import to feed the daemon from: on a
 * loaded box every file-system round trip of a push is latency the client
 * waits for, one path after another (issue #23's profile). Larger files are
 * streamed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { zstdDecompressSync } from 'node:zlib';
import type { UploadCompression } from '../../shared/upload.ts';
import { checkDigest, decompressed, type NarExpectation } from './decompress.ts';

export type { NarExpectation };
import { PushError, rejected } from './errors.ts';
import { hashingMeter } from './meter.ts';


/** Files up to this size (and NARs up to IN_MEMORY_NAR_BYTES) are checked in memory, by default. */
export const IN_MEMORY_FILE_BYTES = 256 * 1024;
const IN_MEMORY_NAR_BYTES = 4 * 1024 * 1024;

const tooLarge = (want: NarExpectation) => rejected(`NAR is larger than its NarSize ${want.narSize}`);


/** The NAR of a small none/zstd file, decompressed in memory (never past NarSize). */
async function narInMemory(file: string, compression: 'none' | 'zstd', want: NarExpectation): Promise<Buffer> {
  const bytes = readFileSync(file);
  if (compression === 'none') {
    if (bytes.length > want.narSize) throw tooLarge(want);
    return bytes;
  }
  try {
    return zstdDecompressSync(bytes, { maxOutputLength: Math.max(1, want.narSize) });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(want);
    throw rejected(`NAR file does not decompress as zstd: ${(e as Error).message}`);
  }
}

/** Throws a 400 PushError unless `nar` (held in memory, e.g. a batch entry) is the expected NAR. */
export function verifyNarBytes(nar: Uint8Array, want: NarExpectation): void {
  checkDigest(nar.length, createHash('sha256').update(nar).digest(), want);
}

/** True when a file of this size is checked in memory (and its NAR handed back for the import). */
export function checkedInMemory(fileSize: number, compression: UploadCompression, want: NarExpectation, inMemoryUpTo = IN_MEMORY_FILE_BYTES): boolean {
  return fileSize <= inMemoryUpTo && want.narSize <= IN_MEMORY_NAR_BYTES && (compression === 'none' || compression === 'zstd');
}

/**
 * Resolves when the file holds the expected NAR; rejects with a 400 PushError saying what differs.
 * For a small file (`fileSize` at most `inMemoryUpTo`) it resolves to the NAR itself.
 */
export async function verifyNarFile(file: string, compression: UploadCompression, want: NarExpectation,
  o: { fileSize?: number; inMemoryUpTo?: number } = {}): Promise<Buffer | undefined> {
  if (o.fileSize !== undefined && checkedInMemory(o.fileSize, compression, want, o.inMemoryUpTo)) {
    const nar = await narInMemory(file, compression as 'none' | 'zstd', want);
    verifyNarBytes(nar, want);
    return nar;
  }
  const { out, done, stop } = decompressed(file, compression);
  const meter = hashingMeter(want.narSize, () => {
    stop();
    return tooLarge(want);
  });
  const sink = new Writable({ write: (_chunk, _e, cb) => cb() });
  const [piped, finished] = await Promise.allSettled([pipeline(out, meter.stream, sink), done]);
  if (meter.over) throw tooLarge(want);
  // The decompressor's own verdict first (it names the codec); a codec error seen by the pipeline is the upload's fault too.
  if (finished.status === 'rejected') throw finished.reason;
  if (piped.status === 'rejected') {
    if (compression === 'none' || piped.reason instanceof PushError) throw piped.reason;
    throw rejected(`NAR file does not decompress as ${compression}: ${(piped.reason as Error).message}`);
  }
  checkDigest(meter.size(), meter.sha256(), want);
  return undefined;
}
