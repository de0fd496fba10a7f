/** Runs wrk (bounded duration, loopback only) and reads the summary the Lua script prints. */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
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
  /**
   * Paced instead of saturated: each connection waits this long (ms, mean) after an answer before its next
   * request (wrk's Lua `delay()`, whole ms: the fraction is made up by choosing the next whole ms at random),
   * so the load is about `connections / (pace + latency)` req/s, below what the server can do, and the
   * latencies are a server's answer time at that rate, not queueing behind wrk's closed loop.
   */
  paceMs?: number;
  /** CPUs to pin wrk to (`taskset -c`, BENCH_WRK_CPUS); unpinned when empty or absent. */
  cpus?: string;
}

/**
 * The pace (ms between an answer and a connection's next request) that offers about half of `refReqPerSec`
 * over `connections`: the paced narinfo rows' rule, half of nginx's saturated req/s in the same round.
 */
export function narinfoPaceMs(connections: number, refReqPerSec: number): number {
  return connections / (refReqPerSec / 2) * 1000;
}

/** rotate.lua plus a `delay()` of `paceMs` on average (a separate script: a `delay()` even of 0 ms costs wrk a timer a request). */
function pacedScript(workDir: string, paceMs: number): string {
  const file = join(workDir, `wrk-paced-${++counter}.lua`);
  const lo = Math.floor(paceMs);
  writeFileSync(file, readFileSync(SCRIPT, 'utf8') + `
-- paced (bench/lib/wrk.ts): ${paceMs.toFixed(3)} ms between an answer and the connection's next request, on average
function delay()
  if math.random() < ${(paceMs - lo).toFixed(4)} then return ${lo + 1} end
  return ${lo}
end
`);
  return file;
}

let counter = 0;

export async function runWrk(r: WrkRun): Promise<WrkResult> {
  const url = new URL(r.base);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error(`refusing to load a non-loopback address: ${r.base}`);
  if (r.paceMs !== undefined && !(r.paceMs > 0)) throw new Error(`wrk (${r.label}): pace must be > 0 ms, not ${r.paceMs}`);
  const listFile = join(r.workDir, `wrk-paths-${++counter}.txt`);
  writeFileSync(listFile, r.paths.join('\n') + '\n');
  const args = ['-t', String(r.threads), '-c', String(r.connections), '-d', `${r.seconds}s`, '--timeout', `${r.timeoutSeconds}s`, '--latency'];
  for (const [k, v] of Object.entries(r.headers)) args.push('-H', `${k}: ${v}`);
  args.push('-s', r.paceMs ? pacedScript(r.workDir, r.paceMs) : SCRIPT, r.base, '--', listFile);

  const limitMs = (r.seconds + r.timeoutSeconds + 30) * 1000;
  const run = await runProcess(r.cpus ? 'taskset' : 'wrk', r.cpus ? ['-c', r.cpus, 'wrk', ...args] : args, { timeoutMs: limitMs }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e), timedOut: false }));
  const { stdout: out, stderr: err } = run;
  const code = run.timedOut ? null : run.code;
  appendFileSync(r.logFile, `\n=== ${r.label}: ${r.cpus ? `taskset -c ${r.cpus} ` : ''}wrk ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}\n${out}${err}`);
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
