/** Runs wrk (bounded duration, loopback only) and reads the summary the Lua script prints. */
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess } from '../../test/helpers/processes.ts';

const SCRIPT = new URL('./rotate.lua', import.meta.url).pathname;

export interface WrkResult {
  requests: number;
  bytes: number;
  durationUs: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: { p50: number; p90: number; p99: number; mean: number; max: number };
  /** Derived. */
  reqPerSec: number;
  mbPerSec: number;
  totalErrors: number;
  /** Share of the machine's CPU that processes outside the benchmark used during the run (%), set by the caller. */
  otherCpuPct?: number;
  /**
   * CPU time the server under test (its whole process tree: nginx's workers, the origin's cluster, wrangler
   * dev with workerd, but not the origin behind a Worker) spent per request, µs; set by the caller. Less
   * sensitive to other work on the machine than requests/s.
   */
  serverCpuUsPerReq?: number;
}

export interface WrkRun {
  /** http://127.0.0.1:PORT */
  base: string;
  /** Request paths to rotate over. */
  paths: string[];
  headers: Record<string, string>;
  threads: number;
  connections: number;
  seconds: number;
  /** wrk's per-request timeout. */
  timeoutSeconds: number;
  workDir: string;
  label: string;
  logFile: string;
}

let counter = 0;

export async function runWrk(r: WrkRun): Promise<WrkResult> {
  const url = new URL(r.base);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error(`refusing to load a non-loopback address: ${r.base}`);
  const listFile = join(r.workDir, `wrk-paths-${++counter}.txt`);
  writeFileSync(listFile, r.paths.join('\n') + '\n');
  const args = ['-t', String(r.threads), '-c', String(r.connections), '-d', `${r.seconds}s`, '--timeout', `${r.timeoutSeconds}s`, '--latency'];
  for (const [k, v] of Object.entries(r.headers)) args.push('-H', `${k}: ${v}`);
  args.push('-s', SCRIPT, r.base, '--', listFile);

  const limitMs = (r.seconds + r.timeoutSeconds + 30) * 1000;
  const run = await runProcess('wrk', args, { timeoutMs: limitMs }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e), timedOut: false }));
  const { stdout: out, stderr: err } = run;
  const code = run.timedOut ? null : run.code;
  appendFileSync(r.logFile, `\n=== ${r.label}: wrk ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}\n${out}${err}`);
  if (code !== 0) throw new Error(`wrk (${r.label}) ${code === null ? `did not finish within ${limitMs / 1000} s` : `exited with ${code}`}: ${err.trim() || out.trim()}`);
  const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (!line) throw new Error(`wrk (${r.label}) printed no summary:\n${out}${err}`);
  const j = JSON.parse(line.slice('BENCH_JSON '.length)) as {
    requests: number; bytes: number; duration_us: number;
    errors: WrkResult['errors']; latency_us: WrkResult['latencyUs'];
  };
  const secs = j.duration_us / 1e6;
  return {
    requests: j.requests,
    bytes: j.bytes,
    durationUs: j.duration_us,
    errors: j.errors,
    latencyUs: j.latency_us,
    reqPerSec: j.requests / secs,
    mbPerSec: j.bytes / secs / 1e6,
    totalErrors: j.errors.connect + j.errors.read + j.errors.write + j.errors.status + j.errors.timeout,
  };
}
