/**
 * Child processes of the benchmark: each runs in its own process group, logs
 * to a file, and is ended (SIGTERM, then SIGKILL) by its own id on every way
 * out — normal end, error, Ctrl-C. Every wait here has a deadline.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface Started {
  name: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
}

const running = new Set<Started>();

/** PATH with the Node running the bench first: wrangler's `#!/usr/bin/env node` must find Node 22. */
export function pathWithOurNode(env: NodeJS.ProcessEnv = process.env): string {
  return `${dirname(process.execPath)}:${env.PATH ?? '/usr/bin:/bin'}`;
}

export function startProcess(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; logDir: string }): Started {
  const logFile = join(opts.logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const s: Started = { name, proc, pid: proc.pid, logFile };
  running.add(s);
  proc.once('exit', () => running.delete(s));
  proc.once('error', () => running.delete(s));
  return s;
}

export function exited(s: Started): boolean {
  return s.proc.exitCode !== null || s.proc.signalCode !== null;
}

function signalGroup(s: Started, sig: NodeJS.Signals) {
  try {
    process.kill(-s.pid, sig); // the group this child leads (detached: true)
  } catch {
    try {
      process.kill(s.pid, sig);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM the child's group; SIGKILL it if it has not exited within graceMs. */
export async function stopProcess(s: Started, graceMs = 5000): Promise<void> {
  if (!exited(s)) {
    const gone = new Promise<void>((r) => s.proc.once('exit', () => r()));
    signalGroup(s, 'SIGTERM');
    const t = await Promise.race([gone.then(() => true), sleep(graceMs).then(() => false)]);
    if (!t) {
      signalGroup(s, 'SIGKILL');
      await Promise.race([gone, sleep(2000)]);
    }
  }
  // Helpers the child left in its group (workerd under wrangler) go too.
  signalGroup(s, 'SIGKILL');
  running.delete(s);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => stopProcess(s)));
}

/** Last resort on exit: no waiting is possible, so SIGKILL every group still known. */
export function killAllSync(): void {
  for (const s of running) signalGroup(s, 'SIGKILL');
  running.clear();
}

export function tailLog(s: Started, lines = 15): string {
  try {
    return readFileSync(s.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value, the deadline passes, or a watched child exits. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, watch: Started[] = []): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const s of watch) {
      if (exited(s)) throw new Error(`${s.name} exited (code ${s.proc.exitCode ?? s.proc.signalCode}) while waiting for ${what}; its log ${s.logFile} ends:\n${tailLog(s)}`);
    }
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(200);
  }
  const logs = watch.map((s) => `--- ${s.logFile}:\n${tailLog(s)}`).join('\n');
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${logs ? '\n' + logs : ''}`);
}

/** Runs a command to completion with a deadline; throws with its stderr on failure. */
export function run(cmd: string, args: string[], opts: SpawnSyncOptions & { timeoutMs: number; what?: string }): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts, timeout: opts.timeoutMs, killSignal: 'SIGKILL' });
  const what = opts.what ?? `${cmd} ${args.slice(0, 3).join(' ')}`;
  if (r.error) throw new Error(`${what}: ${(r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? `timed out after ${opts.timeoutMs / 1000} s` : r.error.message}`);
  if (r.status !== 0) {
    const err = String(r.stderr ?? '').trim().split('\n').slice(-12).join('\n');
    throw new Error(`${what} failed (exit ${r.status ?? r.signal}):\n${err}`);
  }
  return String(r.stdout ?? '');
}

/** A loopback port for a server started later (below the ephemeral range: see the test helper). */
export { freePort } from '../../test/helpers/processes.ts';

/** Busy and total jiffies of the whole machine, from /proc/stat. */
export function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * CPU jiffies used by this process and everything under it (live descendants,
 * plus reaped children such as finished wrk runs through cutime/cstime).
 */
export function ourTreeJiffies(): number {
  return treeJiffies(process.pid);
}

/**
 * CPU jiffies used by process `root` and everything under it (live descendants, plus reaped children
 * through cutime/cstime).
 */
export function treeJiffies(root: number): number {
  const kids = new Map<number, number[]>();
  const used = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    const ppid = Number(rest[1]);
    const pid = Number(name);
    used.set(pid, Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]));
    const list = kids.get(ppid);
    if (list) list.push(pid);
    else kids.set(ppid, [pid]);
  }
  let sum = 0;
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length && seen.size < 100_000) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    sum += used.get(pid) ?? 0;
    for (const k of kids.get(pid) ?? []) stack.push(k);
  }
  return sum;
}

/** Measures the share of the machine's CPU used by processes outside this benchmark while `fn` runs. */
export async function withOtherCpu<T>(fn: () => Promise<T>): Promise<{ value: T; otherCpuPct: number }> {
  const m0 = machineJiffies();
  const o0 = ourTreeJiffies();
  const value = await fn();
  const m1 = machineJiffies();
  const o1 = ourTreeJiffies();
  const dt = m1.total - m0.total;
  const other = dt > 0 ? Math.max(0, ((m1.busy - m0.busy) - (o1 - o0)) / dt) * 100 : 0;
  return { value, otherCpuPct: Math.round(other * 10) / 10 };
}

/** Context switches (voluntary, involuntary) of every thread of process `pid` so far, from /proc/PID/task/*\/status. */
export function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  let voluntary = 0;
  let involuntary = 0;
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const t of tasks) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
      voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0);
      involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0);
    } catch {}
  }
  return { voluntary, involuntary };
}
