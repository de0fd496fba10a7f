/**
 * Tools for the fault, hostile-input, resource and soak tests: a private copy
 * of a chroot store with large paths added, process probes (/proc fd count,
 * bytes read, RSS), bounded polling and a SQLite lock holder. The stack they
 * run against is test/helpers/stack.ts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { NIX_FLAGS, nixEnv } from './nix.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

/** A private copy of the store `from` at `<dir>/root` plus one path of `bytes` random bytes (a large NAR) in `big.path`; returns the root. */
export function copyStoreWithBigFile(from: string, dir: string, bytes: number, big: { path: string }): string {
  const root = copyStore(from, join(dir, 'root'));
  big.path = addRandomFile(root, dir, 'big.bin', bytes);
  rmSync(join(dir, 'big.bin'));
  return root;
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

/** True if `path` is valid in the chroot store `root`. */
export function storeHas(root: string, path: string): boolean {
  try {
    execFileSync('nix', [...NIX_FLAGS, 'path-info', '--store', root, path], { env: nixEnv(), stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
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
