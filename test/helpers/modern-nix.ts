/**
 * Modern Nix (2.26, Debian 13's nix-bin) for tests, beside the machine's Nix 2.8.
 *
 *   await ensureModernNix();                              // in a beforeAll (the first caller builds, ~1 min)
 *   const r = await runModernNix(['copy', '--from', url, '--to', join(dir, 'store'), path], { env });
 *   const r = await modernNixCopy({ from, to, paths, trustedKeys, netrc });   // nixCopy's options
 *   const r = await runInModernNix('nix-store', ['--version']);               // any program in it
 *
 * It lives in a `debootstrap --variant=minbase trixie` chroot with `nix-bin` installed, built once and
 * kept under the work tree's ignored `.cache/nix-2.26/` (ERIS_MODERN_NIX_DIR overrides the place). The
 * build runs under a lock directory, so parallel test files (vitest workers) share one build; a build
 * that died leaves no half tree behind (it is built beside and renamed into place when complete).
 *
 * Every command runs in a mount namespace of its own (`unshare -m`): /proc is mounted and the host's
 * temp dir is bound at the same path inside the chroot, so paths under tmpdir() (stores, binary caches,
 * netrc files, XDG_CACHE_HOME) mean the same thing inside and out; `binds` adds more such dirs. Nothing
 * needs unmounting afterwards: the mounts go away with the namespace, even when the command is killed.
 * The network is the host's, so the chroot's Nix reaches servers on 127.0.0.1.
 *
 * Needs root, debootstrap, unshare and the Debian mirror (once). Without them `modernNixMissing` is true
 * and tests skip — except under CI=true, where they fail instead.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NIX_FLAGS, nixCopyArgs, type CopyOptions, type NixResult } from './nix.ts';
import { processAlive } from '../../origin/server/process-alive.ts';
import { runProcess } from './processes.ts';

/** The Debian release and the Nix it carries. */
const SUITE = 'trixie';
export const MODERN_NIX_VERSION = '2.26';

const repoRoot = resolve(new URL('../..', import.meta.url).pathname);
/** Where the chroot lives once built. */
export const modernNixDir = process.env.ERIS_MODERN_NIX_DIR ?? join(repoRoot, '.cache', `nix-${MODERN_NIX_VERSION}`);
const marker = () => join(modernNixDir, '.eris-modern-nix');
const mirror = process.env.ERIS_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

const has = (cmd: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Why modern Nix cannot be built or run here (undefined when it can). */
export function modernNixUnavailable(): string | undefined {
  if (existsSync(marker())) return process.getuid?.() === 0 ? undefined : 'running the Nix 2.26 chroot needs root';
  if (process.getuid?.() !== 0) return 'building the Nix 2.26 chroot needs root';
  for (const cmd of ['debootstrap', 'unshare', 'chroot']) if (!has(cmd)) return `${cmd} is not installed (apt-get install debootstrap)`;
  return undefined;
}

/** Whether the chroot is built already (so using it costs no debootstrap). */
export const modernNixBuilt = (): boolean => existsSync(marker());

/** Modern Nix needed here: skip when it cannot run on a laptop, fail under CI. */
export const modernNixMissing = modernNixUnavailable() !== undefined && process.env.CI !== 'true';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = processAlive;

async function run(cmd: string, args: string[], timeoutMs: number, input?: string | Buffer): Promise<NixResult> {
  const { code, stdout, stderr, timedOut } = await runProcess(cmd, args, { timeoutMs, input });
  if (timedOut) throw new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\n${stderr.slice(-4000)}`);
  return { code, stdout, stderr };
}

/** Runs `fn` holding a lock dir beside the chroot; a lock whose owner died is taken over. */
async function locked<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const lock = `${modernNixDir}.lock`;
  const deadline = Date.now() + timeoutMs;
  mkdirSync(join(modernNixDir, '..'), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {}
      // No pid yet: its owner is between mkdir and write; a dead owner's lock is stale.
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${lock} (held by pid ${owner})`);
      else await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** debootstrap + apt-get install nix-bin into a fresh dir beside the final one, then rename it into place. */
async function build(timeoutMs: number): Promise<void> {
  const parent = join(modernNixDir, '..');
  const base = `${modernNixDir.slice(parent.length + 1)}.partial-`;
  // Left by builds that died (we hold the lock, so their owners are gone).
  for (const name of readdirSync(parent)) if (name.startsWith(base)) rmSync(join(parent, name), { recursive: true, force: true });
  const dir = join(parent, `${base}${process.pid}`);
  // One mount namespace for the whole build: debootstrap's and our /proc mounts vanish with it.
  const script = [
    'set -e',
    `debootstrap --variant=minbase ${SUITE} "$1" "$2"`,
    'mount -t proc proc "$1/proc"',
    'chroot "$1" env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin apt-get install -y -q --no-install-recommends nix-bin',
    'chroot "$1" nix --version',
  ].join('\n');
  const started = Date.now();
  const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', dir, mirror], timeoutMs);
  const version = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !version.includes(`(Nix) ${MODERN_NIX_VERSION}`)) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`building the Nix ${MODERN_NIX_VERSION} chroot failed (exit ${r.code}, version "${version}")\n${r.stderr.slice(-4000)}`);
  }
  writeFileSync(join(dir, '.eris-modern-nix'), `${version}\nbuilt in ${Math.round((Date.now() - started) / 1000)} s from ${mirror}\n`);
  renameSync(dir, modernNixDir);
}

let ready: Promise<string> | undefined;

/**
 * The chroot, built on first use (under the lock; later callers and other workers wait for it). Returns
 * its `nix --version` line. Call it in a beforeAll with a long enough timeout (the build takes about a
 * minute on an idle machine; the default waits up to 15 minutes).
 */
export function ensureModernNix(timeoutMs = 900_000): Promise<string> {
  ready ??= (async () => {
    const why = modernNixUnavailable();
    if (why) throw new Error(`modern Nix is not available: ${why}`);
    if (!existsSync(marker())) await locked(async () => existsSync(marker()) || (await build(timeoutMs)), timeoutMs);
    return readFileSync(marker(), 'utf8').split('\n')[0]!;
  })();
  ready.catch(() => (ready = undefined));
  return ready;
}

export interface ModernNixOptions {
  /** Extra environment for the command (NIX_CONFIG, XDG_CACHE_HOME, … override the defaults). */
  env?: Record<string, string>;
  /** Host dirs to bind at the same path inside the chroot (tmpdir() always is). */
  binds?: string[];
  timeoutMs?: number;
  /** Data written to the command's stdin. */
  input?: string | Buffer;
}

/** Runs `program args…` inside the chroot as root, single-user, no substituters, no sandbox. */
export async function runInModernNix(program: string, args: string[], options: ModernNixOptions = {}): Promise<NixResult> {
  await ensureModernNix();
  const binds = [tmpdir(), ...(options.binds ?? [])].map((d) => resolve(d));
  const cache = mkdtempSync(join(tmpdir(), 'eris-nix-cache-'));
  const env: Record<string, string> = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    TMPDIR: resolve(tmpdir()),
    NIX_REMOTE: '',
    NIX_CONFIG: 'substituters =\nsandbox = false\nbuild-users-group =',
    XDG_CACHE_HOME: cache, // a fresh one: Nix remembers nix-cache-info and misses per substituter URL
    ...options.env,
  };
  // $1 is the chroot; the binds follow, then `--`, then the env assignments and the command.
  const script = [
    'set -e',
    'root=$1; shift',
    'mount -t proc proc "$root/proc"',
    'while [ "$1" != -- ]; do mkdir -p "$root$1"; mount --bind "$1" "$root$1"; shift; done; shift',
    'exec chroot "$root" env -i "$@"',
  ].join('\n');
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  try {
    return await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', modernNixDir, ...binds, '--', ...envArgs, program, ...args], options.timeoutMs ?? 90_000, options.input);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

/** `nix <args>` (Nix 2.26, nix-command enabled) inside the chroot. */
export function runModernNix(args: string[], options: ModernNixOptions = {}): Promise<NixResult> {
  return runInModernNix('nix', [...NIX_FLAGS, ...args], options);
}

/** nixCopy's twin: `nix copy --from <cache>` with Nix 2.26 into a store root (a path under tmpdir()). */
export function modernNixCopy(o: CopyOptions): Promise<NixResult> {
  return runModernNix(nixCopyArgs(o), { timeoutMs: o.timeoutMs ?? 90_000 });
}
