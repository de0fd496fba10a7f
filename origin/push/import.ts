/**
 * Imports one verified path into the live store through Nix itself: the NAR
 * file and a narinfo signed with the cache's key go into a private, one-path
 * `file://` binary cache, and `nix copy --from file://… --to <store>
 * --no-recursive` adds it. Nix checks the NAR hash again, takes the path's
 * lock, writes the files under a temporary name and registers the path only
 * once it is complete, so nothing half-imported ever becomes valid; a
 * reference that is not valid fails the copy.
 *
 * Trust: the destination checks the signature (require-sigs) against the keys
 * it trusts — for the box's store (through the daemon, or as its owner) those
 * of its nix.conf, so the origin needs no trusted-user; for a store under
 * another root (tests, a dedicated store) the origin passes its own keys.
 * `trust = "no-check-sigs"` skips the check instead (needs a trusted-user when
 * going through the daemon).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderNarInfo, type NarInfo } from '../../shared/narinfo.ts';
import { PushError, tryLater } from './errors.ts';

export type PushTrust = 'signature' | 'no-check-sigs';

export interface ImporterOptions {
  /** Nix store URI to import into: `auto`, `daemon`, or a directory (a chroot store root). */
  storeUri: string;
  storeDir: string;
  trust: PushTrust;
  /** Public keys passed to Nix when it checks the signature in-process (a store under another root). */
  trustedKeys: string[];
  /** Scratch space for the one-path caches (the push directory). */
  workDir: string;
  nixBin?: string;
  timeoutMs?: number;
}

export interface Importer {
  /** Adds the path of `info` (already verified, signed as it should be stored) from the NAR file at `narFile`. */
  importPath(info: NarInfo, narFile: string): Promise<void>;
}

/** Directory store URIs are chroot stores, whose signature check runs in the nix process we start. */
export const isLocalRoot = (uri: string) => uri.startsWith('/');

export function nixCopyArgs(o: ImporterOptions, from: string, storePath: string): string[] {
  const args = ['--extra-experimental-features', 'nix-command', 'copy', '--from', from, '--to', o.storeUri, '--no-recursive', storePath,
    '--option', 'substituters', '', '--option', 'narinfo-cache-negative-ttl', '0'];
  if (o.trust === 'no-check-sigs') args.push('--no-check-sigs');
  else if (isLocalRoot(o.storeUri)) args.push('--option', 'trusted-public-keys', o.trustedKeys.join(' '), '--option', 'require-sigs', 'true');
  return args;
}

export function createImporter(o: ImporterOptions): Importer {
  const nix = o.nixBin ?? 'nix';
  return {
    async importPath(info, narFile) {
      const dir = join(o.workDir, 'import', randomBytes(8).toString('hex'));
      await mkdir(join(dir, 'nar'), { recursive: true });
      try {
        const file = info.url.slice('nar/'.length);
        await link(narFile, join(dir, 'nar', file)).catch(() => copyFile(narFile, join(dir, 'nar', file)));
        await writeFile(join(dir, 'nix-cache-info'), `StoreDir: ${o.storeDir}\n`);
        await writeFile(join(dir, `${info.storePath.slice(o.storeDir.length + 1, o.storeDir.length + 33)}.narinfo`), renderNarInfo(info));
        const { code, stderr } = await run(nix, nixCopyArgs(o, `file://${dir}`, info.storePath), {
          // Nix's narinfo disk cache would otherwise grow in the origin user's home with one-off URIs.
          XDG_CACHE_HOME: join(o.workDir, 'nix-cache'),
        }, o.timeoutMs ?? 600_000);
        if (code !== 0) throw importFailure(stderr);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Nix's reason, in our terms: the pusher's fault (4xx), temporary (503), or ours (500). */
function importFailure(stderr: string): PushError {
  const line = stderr.split('\n').filter((l) => l.startsWith('error:')).pop()?.replace(/^error:\s*/, '') ?? stderr.trim().split('\n').pop() ?? 'nix copy failed';
  if (/is not valid/.test(line)) return new PushError(400, `missing reference: ${line}`);
  if (/lacks a valid signature|signature/.test(line)) return new PushError(500, `the store refused eris's signature (${line}); see eris doctor`);
  if (/hash mismatch|NAR/.test(line)) return new PushError(400, `the store refused the NAR: ${line}`);
  if (/timed out/.test(line)) return tryLater(`import timed out: ${line}`);
  if (/cannot connect|Connection refused|database is locked|No space left/i.test(line)) return tryLater(`store unavailable: ${line}`);
  return new PushError(500, `import failed: ${line}`);
}

function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr.length < 20_000 ? (stderr += d) : undefined));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      stderr += '\nerror: timed out';
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new PushError(500, `cannot run nix: ${e.message}`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}
