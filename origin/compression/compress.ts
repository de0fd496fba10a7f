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
  return xzCompressor(level);
}

/**
 * `xz -c` as a Duplex whose readable side ends only once xz has exited 0: output cut short by a
 * crash or a kill (stdout closes before the exit status is known) is an error, never a clean end.
 */
function xzCompressor(level: number): Duplex {
  const child = spawn('xz', ['-c', '-T1', `-${level}`], { stdio: ['pipe', 'pipe', 'ignore'] });
  let stdoutEnded = false;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const duplex = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (child.stdin.write(chunk)) cb();
      else child.stdin.once('drain', () => cb());
    },
    final(cb) {
      child.stdin.end(() => cb());
    },
    read() {
      child.stdout.resume();
    },
    destroy(err, cb) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      cb(err);
    },
  });
  const settle = () => {
    if (!stdoutEnded || !exit || duplex.destroyed) return;
    if (exit.code === 0) duplex.push(null);
    else duplex.destroy(new Error(`xz exited with ${exit.code ?? exit.signal}`));
  };
  child.stdout.on('data', (d: Buffer) => {
    if (!duplex.push(d)) child.stdout.pause();
  });
  child.stdout.once('end', () => {
    stdoutEnded = true;
    settle();
  });
  child.once('exit', (code, signal) => {
    exit = { code, signal };
    settle();
  });
  child.once('error', (e) => duplex.destroy(e));
  child.stdin.on('error', (e) => duplex.destroy(e));
  return duplex;
}
