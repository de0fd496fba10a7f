/**
 * Helpers for the fault, hostile-input, resource and soak tests: a private
 * copy of the fixture store (plus large paths), the real stack (`eris serve`
 * + `wrangler dev`) with an origin that can be killed and restarted on the
 * same port, process probes (/proc fd count, RSS) and a SQLite lock holder.
 * Every wait here is bounded.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { addToken } from '../origin/tokens.ts';
import { generateKeyPair } from '../shared/signing.ts';
import { parseNarInfo } from '../shared/narinfo.ts';
import { NIX_FLAGS, nixEnv, runNix, type NixResult } from './helpers/nix.ts';
import { freePort, startEdge, startOriginCli, type EdgeProc, type OriginProc } from './helpers/processes.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Hash part of a store path. */
export const hashOf = (storePath: string) => storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);

/** A writable copy of a chroot store (`cp -a` keeps the read-only store modes). */
export function copyStore(from: string, to: string): string {
  execFileSync('cp', ['-a', from, to]);
  return to;
}

/** Adds a regular file of `bytes` random bytes to a chroot store; returns its store path. */
export function addRandomFile(root: string, dir: string, name: string, bytes: number): string {
  const file = join(dir, name);
  writeRandom(file, bytes);
  return execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', '--store', root, file], { env: nixEnv(), encoding: 'utf8' }).trim();
}

/** Adds a directory of `files` random files of `bytesEach` to a chroot store; returns its store path. */
export function addRandomTree(root: string, dir: string, name: string, files: number, bytesEach: number): string {
  const tree = join(dir, name);
  mkdirSync(tree);
  for (let i = 0; i < files; i++) writeRandom(join(tree, `f${String(i).padStart(4, '0')}`), bytesEach);
  return execFileSync('nix', [...NIX_FLAGS, 'store', 'add-path', '--store', root, tree], { env: nixEnv(), encoding: 'utf8' }).trim();
}

function writeRandom(file: string, bytes: number) {
  const fd = openSync(file, 'w');
  try {
    const block = Buffer.allocUnsafe(1 << 20);
    for (let left = bytes; left > 0; ) {
      randomFillSync(block);
      const n = Math.min(left, block.length);
      writeSync(fd, block, 0, n);
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}

export interface Stack {
  dir: string;
  root: string;
  secret: string;
  origin: OriginProc;
  edge: EdgeProc;
  token: string;
  publicKey: string;
  netrc: string;
  /** Basic credentials for fetch. */
  auth: Record<string, string>;
  /** GET (or other) through the edge with credentials. */
  get(path: string, init?: RequestInit & { auth?: boolean }): Promise<Response>;
  /** Straight to the origin with the edge secret. */
  direct(path: string, init?: RequestInit): Promise<Response>;
  /** SIGKILL the origin (no clean shutdown). */
  killOrigin(): Promise<void>;
  /** Start the origin again on the same port. */
  restartOrigin(): Promise<void>;
  stop(): Promise<void>;
}

export async function startStack(o: { dir: string; root: string; secret?: string; vars?: Record<string, string>; originArgs?: string[] }): Promise<Stack> {
  const secret = o.secret ?? 'faults-edge-secret-' + createHash('sha256').update(o.dir).digest('hex').slice(0, 24);
  const kp = generateKeyPair('eris-faults-1');
  const keyFile = join(o.dir, 'cache.sec');
  writeFileSync(keyFile, kp.secret);
  const port = await freePort();
  const originOpts = { root: o.root, keyFiles: [keyFile], edgeSecret: secret, port, extraArgs: o.originArgs };
  let origin = await startOriginCli(originOpts);
  const edge = await startEdge({ originUrl: origin.url, edgeSecret: secret, vars: o.vars });
  const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'alice', { scopes: ['read'] });
  const netrc = join(o.dir, 'netrc');
  writeFileSync(netrc, `machine 127.0.0.1 login alice password ${token}\n`);
  const auth = { Authorization: 'Basic ' + btoa(`alice:${token}`) };
  const stack: Stack = {
    dir: o.dir,
    root: o.root,
    secret,
    get origin() {
      return origin;
    },
    edge,
    token,
    publicKey: kp.public,
    netrc,
    auth,
    get(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.auth !== false) for (const [k, v] of Object.entries(auth)) headers.set(k, v);
      return fetch(edge.url + path, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(30_000) });
    },
    direct(path, init = {}) {
      const headers = new Headers(init.headers);
      headers.set('x-eris-edge-secret', secret);
      return fetch(origin.url + path, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(30_000) });
    },
    async killOrigin() {
      const child = origin.child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      process.kill(child.pid!, 'SIGKILL');
      await Promise.race([exited, sleep(5000)]);
    },
    async restartOrigin() {
      origin = await startOriginCli(originOpts);
    },
    async stop() {
      await edge.stop();
      await origin.stop();
      // startEdge keeps its wrangler state in a temp dir of its own.
      rmSync(dirname(edge.persistTo), { recursive: true, force: true });
    },
  };
  return stack;
}

/** `nix copy --from <edge or proxy>` with explicit retry settings. */
export function nixCopyFrom(s: Stack, o: { from?: string; to: string; paths: string[]; attempts: number; timeoutMs?: number }): Promise<NixResult> {
  return runNix(
    ['copy', '--from', o.from ?? s.edge.url, '--to', o.to, ...o.paths,
      '--option', 'trusted-public-keys', s.publicKey, '--option', 'substituters', '',
      '--option', 'netrc-file', s.netrc, '--option', 'connect-timeout', '5',
      '--option', 'download-attempts', String(o.attempts)],
    { timeoutMs: o.timeoutMs ?? 90_000 },
  );
}

/** True if `path` is valid in the chroot store `root`. */
export function storeHas(root: string, path: string): boolean {
  try {
    execFileSync('nix', [...NIX_FLAGS, 'path-info', '--store', root, path], { env: nixEnv(), stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** The narinfo of a path, fetched straight from the origin. */
export async function narInfoOf(s: Stack, storePath: string) {
  const res = await s.direct(`/${hashOf(storePath)}.narinfo`);
  if (res.status !== 200) throw new Error(`narinfo of ${storePath}: ${res.status}`);
  return parseNarInfo(await res.text());
}

// ---- process probes -------------------------------------------------------

/** Open file descriptors of a process, with what they point at. */
export function openFds(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  const out: string[] = [];
  for (const fd of readdirSync(dir)) {
    try {
      out.push(readlinkSync(join(dir, fd)));
    } catch {
      // closed while we looked
    }
  }
  return out;
}

/** Bytes a process has read through read-like syscalls (pread included). */
export function readChars(pid: number): number {
  try {
    const m = /rchar:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Resident set size in KiB. */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Waits (bounded) until `pred` holds, polling every `everyMs`. */
export async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return true;
    await sleep(everyMs);
  }
  return false;
}

// ---- SQLite lock holder ---------------------------------------------------

const HOLD_PY = `
import sqlite3, sys, time
db, secs = sys.argv[1], float(sys.argv[2])
c = sqlite3.connect(db, isolation_level=None, timeout=10)
c.execute('BEGIN EXCLUSIVE')
c.execute('UPDATE ValidPaths SET registrationTime = registrationTime + 0 WHERE id = (SELECT min(id) FROM ValidPaths)')
print('locked', flush=True)
time.sleep(secs)
c.execute('COMMIT')
c.close()
print('released', flush=True)
`;

export interface LockHolder {
  child: ChildProcess;
  /** Resolves when the writer holds its lock. */
  locked: Promise<void>;
  /** Resolves when it committed and closed. */
  released: Promise<void>;
}

/** A writer holding `BEGIN EXCLUSIVE` (with a pending write) on a store DB for `seconds`, like a Nix transaction that takes long. */
export function holdExclusive(dbPath: string, seconds: number): LockHolder {
  const child = spawn('python3', ['-c', HOLD_PY, dbPath, String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waitFor = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`sqlite holder: no "${word}" after ${seconds + 15} s: ${err}`)), (seconds + 15) * 1000);
      const check = () => {
        if (out.includes(word)) {
          clearTimeout(t);
          resolve();
        }
      };
      child.stdout!.on('data', (d) => {
        out += d;
        check();
      });
      child.once('exit', (code) => {
        check();
        if (!out.includes(word)) {
          clearTimeout(t);
          reject(new Error(`sqlite holder exited ${code}: ${err}`));
        }
      });
    });
  child.stderr!.on('data', (d) => (err += d));
  return { child, locked: waitFor('locked'), released: waitFor('released') };
}

/** Runs SQL on a store DB with python3's sqlite3 (a writer other than Nix). */
export function sqlite(dbPath: string, sql: string): string {
  return execFileSync('python3', ['-c', 'import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=10)\nfor r in c.execute(sys.argv[2]): print("|".join(map(str,r)))\nc.close()', dbPath, sql], { encoding: 'utf8' });
}
