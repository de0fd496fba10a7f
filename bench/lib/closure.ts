/**
 * `nix copy` of a whole closure from a binary cache URL into a fresh local
 * store, with real Nix, timed: what a user waits for. Every run starts with an
 * empty destination and an empty Nix cache dir (no narinfo disk cache), and
 * checks afterwards that every path of the closure arrived.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess, stopProcess, tailLog, exited, withOtherCpu } from './procs.ts';

export interface CopyRun {
  /** Wall time of each `nix copy`, seconds. */
  seconds: number[];
  /** Median of `seconds`. */
  median: number;
  /** Store paths copied per run. */
  paths: number;
  /** Largest share of the CPU other processes used during a run (%). */
  otherCpuPct: number;
}

let counter = 0;

export interface CopyOptions {
  /** Binary cache URL (http://127.0.0.1:PORT). */
  from: string;
  /** Top of the closure. */
  path: string;
  /** Every path the closure holds, checked in the destination afterwards. */
  closure: string[];
  runs: number;
  workDir: string;
  netrc?: string;
  label: string;
  /** Called before each run (waits for a quiet machine). */
  before?: () => Promise<unknown>;
}

async function once(o: CopyOptions): Promise<{ seconds: number; otherCpuPct: number }> {
  const n = ++counter;
  const dest = join(o.workDir, `copy-${n}`);
  const xdg = join(o.workDir, `copy-${n}-xdg`);
  mkdirSync(xdg, { recursive: true });
  const args = ['--extra-experimental-features', 'nix-command', 'copy', '--no-check-sigs', '--from', o.from, '--to', dest, o.path,
    '--option', 'substituters', '', '--option', 'connect-timeout', '5', '--option', 'download-attempts', '1'];
  if (o.netrc) args.push('--option', 'netrc-file', o.netrc);
  const env = { ...process.env, XDG_CACHE_HOME: xdg, ...(process.getuid?.() === 0 ? { NIX_REMOTE: '' } : {}) };
  try {
    const { value: seconds, otherCpuPct } = await withOtherCpu(async () => {
      const t0 = performance.now();
      const p = startProcess(`nix-copy-${n}`, 'nix', args, { env, logDir: o.workDir });
      const done = new Promise<void>((r) => p.proc.once('exit', () => r()));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 600_000)));
      // The deadline's timer is cleared: a pending one kept the bench process alive for 10 minutes after its last copy.
      const ok = await Promise.race([done.then(() => true), late]).finally(() => clearTimeout(timer));
      const secs = (performance.now() - t0) / 1000;
      if (!ok) {
        await stopProcess(p);
        throw new Error(`nix copy (${o.label}) took longer than 600 s`);
      }
      if (!exited(p) || p.proc.exitCode !== 0) throw new Error(`nix copy (${o.label}) failed (exit ${p.proc.exitCode ?? p.proc.signalCode}):\n${tailLog(p)}`);
      return secs;
    });
    const missing = o.closure.filter((sp) => !existsSync(join(dest, sp)));
    if (missing.length) throw new Error(`nix copy (${o.label}) left ${missing.length} of ${o.closure.length} paths missing, e.g. ${missing[0]}`);
    return { seconds, otherCpuPct };
  } finally {
    rmSync(dest, { recursive: true, force: true });
    rmSync(xdg, { recursive: true, force: true });
  }
}

const medianOf = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
};

/** Several runs (made one at a time, alternating with another target's) as one. */
export function mergeCopyRuns(runs: CopyRun[]): CopyRun {
  const seconds = runs.flatMap((r) => r.seconds);
  return { seconds, median: medianOf(seconds), paths: runs[0]?.paths ?? 0, otherCpuPct: Math.max(0, ...runs.map((r) => r.otherCpuPct)) };
}

export async function closureCopy(o: CopyOptions): Promise<CopyRun> {
  const seconds: number[] = [];
  let other = 0;
  for (let i = 0; i < o.runs; i++) {
    await o.before?.();
    const r = await once(o);
    seconds.push(r.seconds);
    other = Math.max(other, r.otherCpuPct);
  }
  return { seconds, median: medianOf(seconds), paths: o.closure.length, otherCpuPct: other };
}
