/** Starting the real parts (origin CLI, wrangler dev) on free loopback ports, with bounded waits. */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PROJECT_DIR, WRANGLER, wranglerEnv } from '../../origin/tokens/cli.ts';

/** Node arguments that run the `eris` command from this checkout. */
export const ERIS_CLI = ['--disable-warning=ExperimentalWarning', join(PROJECT_DIR, 'origin/cli/index.ts')];

/** Runs `eris ARGS…` to the end (bounded), as a user types it. */
export function eris(args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [...ERIS_CLI, ...args], { encoding: 'utf8', env: o.env ?? process.env, timeout: o.timeoutMs ?? 60_000 });
}

/** `eris ARGS…` without blocking this process (needed when the test process itself serves what the command talks to). */
export async function erisAsync(args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const { code: status, stdout, stderr } = await runProcess(process.execPath, [...ERIS_CLI, ...args], { env: o.env, timeoutMs: o.timeoutMs ?? 60_000 });
  return { status, stdout, stderr };
}

export interface RunResult {
  /** The exit code; null when killed by a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Killed (SIGKILL) after timeoutMs. */
  timedOut: boolean;
}

/**
 * Runs a program to its end without blocking this process: its output
 * collected, `input` on its stdin, killed after `timeoutMs`. A program that
 * cannot be started (not on PATH) rejects.
 */
export function runProcess(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: o.env ?? process.env, stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
    if (o.input !== undefined) child.stdin!.end(o.input);
  });
}

/**
 * A loopback port for a child process to bind later. A port from listen(0) lies in the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range), where any outgoing connection may take it as its source port in the seconds
 * before the child binds — wrangler dev takes several, and once found its port so taken ("Address already in
 * use"). So: a random port in the 10 000 below that range, checked free now, never the same twice from this
 * process; listen(0) only where the range starts too low to leave room.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  if (low < 11_024) return bindable(0) as Promise<number>;
  for (let i = 0; i < 200; i++) {
    const port = low - 10_000 + Math.floor(Math.random() * 10_000);
    if (handedOut.has(port)) continue;
    if ((await bindable(port)) !== undefined) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free loopback port found in ${low - 10_000}–${low - 1}`);
}

const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

/** The port, once bound and released on 127.0.0.1 (0: whatever the kernel gives); undefined when it is taken. */
function bindable(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => (port !== 0 && (e.code === 'EADDRINUSE' || e.code === 'EACCES') ? resolve(undefined) : reject(e)));
    srv.listen(port, '127.0.0.1', () => {
      const bound = (srv.address() as { port: number }).port;
      srv.close(() => resolve(bound));
    });
  });
}

/** Another user to run a process as (Node drops the supplementary groups too). */
export interface RunAs {
  uid: number;
  gid: number;
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts a process in its own process group, its output collected in memory — or, with `logFile`, written
 * to that file, so the process may outlive this one (a stack shared by several test files).
 */
export function startProcess(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile?: string; user?: RunAs } = {}): Proc {
  const fd = options.logFile ? openSync(options.logFile, 'a') : undefined;
  const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'], detached: true, ...options.user });
  let out = '';
  if (fd !== undefined) closeSync(fd);
  else {
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
  }
  return {
    child,
    output: () => (options.logFile ? readFileSync(options.logFile, 'utf8') : out),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {}
        }, 5000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        try {
          process.kill(-child.pid!, 'SIGTERM'); // the whole group: wrangler starts workerd
        } catch {
          resolve();
        }
      }),
  };
}

/**
 * One GET on a connection of its own, closed after the answer: its status, or undefined when it fails. Not fetch:
 * fetch pools the socket (even with `Connection: close`), and when the caller next blocks its event loop (a
 * spawnSync of `wrangler kv`, a nix-build) past wrangler dev's 15 s idle timeout, the test's next request goes out on
 * that socket after the server closed it: "other side closed", bytesRead 0.
 */
function probe(url: string, headers: Record<string, string>, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = httpGet(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      res.on('error', () => resolve(undefined));
      res.on('end', () => resolve(res.statusCode));
      res.resume();
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** Polls `url` until it answers below 500 (bounded); fails at once if the process exits. */
export async function waitFor(url: string, proc: Proc, timeoutMs = 90_000, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`process exited early:\n${proc.output()}`);
    const status = await probe(url, headers, 2000);
    if (status !== undefined && status < 500) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms:\n${proc.output()}`);
}

/** Waits (bounded) until the process has printed a line matching `re`; returns all its output so far. */
export async function waitForOutput(proc: Proc, re: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (re.test(proc.output())) return proc.output();
    if (proc.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no ${re} in output:\n${proc.output()}`);
}

export interface OriginProc extends Proc {
  url: string;
  port: number;
}

/** The origin as users run it: `eris serve` in its own process. */
export async function startOriginCli(o: { root: string; keyFiles: string[]; edgeSecret: string; port?: number; extraArgs?: string[]; logFile?: string; user?: RunAs; env?: NodeJS.ProcessEnv }): Promise<OriginProc> {
  const port = o.port ?? (await freePort());
  const args = [...ERIS_CLI, 'serve', '--bind', `127.0.0.1:${port}`, '--store-root', o.root];
  for (const k of o.keyFiles) args.push('--sign-key', k);
  args.push(...(o.extraArgs ?? []));
  const proc = startProcess(process.execPath, args, { env: { ...process.env, ...o.env, ERIS_EDGE_SECRET: o.edgeSecret }, logFile: o.logFile, user: o.user });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/health`, proc, 20_000);
  return { ...proc, url, port };
}

export interface EdgeProc extends Proc {
  url: string;
  port: number;
  persistTo: string;
}

/**
 * The Worker in workerd via `wrangler dev --local`, offline; its env file and KV state in `dir` (default: a
 * new temp dir, which stop() removes).
 */
export async function startEdge(o: { originUrl: string; edgeSecret: string; vars?: Record<string, string>; persistTo?: string; dir?: string; logFile?: string; port?: number }): Promise<EdgeProc> {
  const port = o.port ?? (await freePort());
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'eris-edge-'));
  const ownDir = o.dir === undefined;
  const persistTo = o.persistTo ?? join(dir, 'state');
  const envFile = join(dir, 'worker.env');
  writeFileSync(envFile, `ORIGIN_URL=${o.originUrl}\nEDGE_SECRET=${o.edgeSecret}\n`);
  const args = ['dev', '--local', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', '0',
    '--show-interactive-dev-session=false', '--config', join(PROJECT_DIR, 'wrangler.toml'), '--persist-to', persistTo, '--env-file', envFile];
  for (const [k, v] of Object.entries(o.vars ?? {})) args.push('--var', `${k}:${v}`);
  const proc = startProcess(WRANGLER, args, { env: wranglerEnv(), cwd: dir, logFile: o.logFile });
  const stop = async () => {
    await proc.stop();
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${url}/nix-cache-info`, proc, 120_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { ...proc, stop, url, port, persistTo };
}

/** The edge's request log lines (one JSON object per request, after wrangler's own prefix) in a process's output. */
export function edgeLogLines(output: string): Record<string, unknown>[] {
  return output.split('\n').flatMap((l) => {
    const at = l.indexOf('{"method"');
    if (at < 0) return [];
    try {
      return [JSON.parse(l.slice(at)) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}
