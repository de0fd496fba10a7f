/** Running the real Nix client in tests. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseStorePath } from '../../shared/store-path.ts';
import { runProcess } from './processes.ts';

export const NIX_FLAGS = ['--extra-experimental-features', 'nix-command'];

/** The hash part of a store path (`/nix/store/<hash>-<name>`): what narinfo URLs are named by. */
export const hashOf = (storePath: string): string => parseStorePath(storePath).hashPart;

export function hasNix(): boolean {
  try {
    execFileSync('nix', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Single-user Nix as root; no substituters that would reach the network. */
export function nixEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, NIX_REMOTE: '', NIX_CONFIG: 'substituters =\nsandbox = false', ...extra };
}

/** Nix needed here: skip when absent on a laptop, fail under CI. */
export const nixMissing = !hasNix() && process.env.CI !== 'true';

export interface NixResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function runNix(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<NixResult> {
  // A fresh cache dir: Nix remembers nix-cache-info and misses per substituter URL.
  const cache = mkdtempSync(join(tmpdir(), 'eris-nix-cache-'));
  try {
    const { code, stdout, stderr, timedOut } = await runProcess('nix', [...NIX_FLAGS, ...args], { env: nixEnv({ XDG_CACHE_HOME: cache, ...options.env }), timeoutMs: options.timeoutMs ?? 60_000 });
    if (timedOut) throw new Error(`nix ${args.join(' ')} timed out\n${stderr}`);
    return { code, stdout, stderr };
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

export interface CopyOptions {
  from: string;
  paths: string[];
  to: string;
  trustedKeys: string;
  netrc?: string;
  /** download-attempts (default 1: a failure shows at once). */
  attempts?: number;
  timeoutMs?: number;
}

/** The arguments of `nix copy --from <cache>` into a store root, checking signatures against `trustedKeys` (any Nix version). */
export function nixCopyArgs(o: CopyOptions): string[] {
  const args = ['copy', '--from', o.from, '--to', o.to, ...o.paths,
    '--option', 'trusted-public-keys', o.trustedKeys, '--option', 'substituters', '',
    '--option', 'connect-timeout', '5', '--option', 'download-attempts', String(o.attempts ?? 1)];
  if (o.netrc) args.push('--option', 'netrc-file', o.netrc);
  return args;
}

/** `nix copy --from <cache>` into a fresh store root, checking signatures against `trustedKeys`. */
export function nixCopy(o: CopyOptions): Promise<NixResult> {
  return runNix(nixCopyArgs(o), { timeoutMs: o.timeoutMs ?? 90_000 });
}

/** Builds test/fixtures/fixture.nix's `top` with real Nix and copies its closure into a chroot store at `root`. */
export function buildFixtureStore(root: string): { top: string; closure: string[] } {
  const env = nixEnv();
  const fixtureNix = new URL('../fixtures/fixture.nix', import.meta.url).pathname;
  const top = execFileSync('nix-build', [fixtureNix, '-A', 'top', '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8' }).trim();
  const closure = execFileSync('nix-store', ['-qR', top], { env, encoding: 'utf8' }).trim().split('\n');
  execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, top], { env, stdio: 'pipe' });
  return { top, closure };
}

export function narDump(path: string, root?: string): Buffer {
  const args = root ? ['--store', root, 'store', 'dump-path', path] : ['store', 'dump-path', path];
  return execFileSync('nix', [...NIX_FLAGS, ...args], { env: nixEnv(), maxBuffer: 1 << 30 });
}
