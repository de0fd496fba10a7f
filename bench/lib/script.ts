/** What the single-row bench scripts (bench:closure, bench:narinfo) share: a temp dir, clean-up on every way out. */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { killAllSync, stopAll } from './procs.ts';

/**
 * Runs `body` with a fresh temp dir (`eris-bench-<name>-…`); afterwards stops every child it started and
 * removes the dir (kept, and said so, with BENCH_KEEP=1); a failure is printed and exits 1.
 */
export function benchScript(name: string, say: (s: string) => void, body: (work: string) => Promise<void>): void {
  const work = mkdtempSync(join(tmpdir(), `eris-bench-${name}-`));
  process.on('exit', killAllSync);
  const run = async () => {
    try {
      await body(work);
    } finally {
      await stopAll();
      if (process.env.BENCH_KEEP !== '1') rmSync(work, { recursive: true, force: true });
      else say(`kept ${work}`);
    }
  };
  run().catch((err: unknown) => {
    killAllSync();
    process.stderr.write(`bench/${name}: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
