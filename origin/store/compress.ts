/**
 * Compressors for NARs served compressed: zstd through node:zlib (fast enough
 * to run on the fly), xz through the `xz` program (Node has no xz codec; slow,
 * so best paired with the on-disk cache).
 */
import { constants, createZstdCompress } from 'node:zlib';
import { spawn } from 'node:child_process';
import { Duplex, type Transform } from 'node:stream';

export type Compression = 'none' | 'zstd' | 'xz';

/** URL suffix for each method. None of these is an extension Cloudflare caches by default (.zst is). */
export const URL_SUFFIX: Record<Exclude<Compression, 'none'>, string> = { zstd: '.nar.zstd', xz: '.nar.xz' };

/** zstd 3 compresses far faster than a network link; xz 3 is its usual speed/size middle. */
export function defaultLevel(_method: Compression): number {
  return 3;
}

export function createCompressor(method: Exclude<Compression, 'none'>, level: number): Transform | Duplex {
  if (method === 'zstd') {
    return createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 1 } });
  }
  const child = spawn('xz', ['-c', '-T1', `-${level}`], { stdio: ['pipe', 'pipe', 'ignore'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') duplex.destroy(new Error(`xz exited with ${code ?? signal}`));
  });
  duplex.once('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return duplex;
}
