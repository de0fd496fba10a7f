/**
 * A cache's roots on disk → the store paths they stand for. A root is a store
 * path (or a path inside one), a symlink chain ending in one (a profile such as
 * /nix/var/nix/profiles/system, a `result` link, a GC root), or a directory whose
 * entries are such symlinks (searched a few levels deep, as Nix searches gcroots).
 * Every path is read under the store root, as in a chroot: a link to
 * `/nix/store/…` or `/nix/var/…` means `<store_root>/nix/…`. Cheap enough to run
 * every half second: a readlink per link, a readdir per directory.
 */
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { isStorePathBaseName } from '../../shared/store-path.ts';
import { GCROOTS_DIR } from '../store/gc-roots.ts';

export interface ResolvedRoot {
  /** What the root was given as: a config entry, or a link in the gcroots directory (both as seen under the store root). */
  source: string;
  /** The store path it stands for, when it resolves to one. */
  storePath?: string;
  /** Why it does not, in a few words (dangling link, not a store path, unreadable). */
  problem?: string;
}

const MAX_LINKS = 40;
const MAX_DEPTH = 4;

/** The store path at the start of `path` (`/nix/store/<hash>-<name>[/…]`), if it is in the store. */
export function storePathPrefix(path: string, storeDir: string): string | undefined {
  if (!path.startsWith(storeDir + '/')) return undefined;
  const base = path.slice(storeDir.length + 1).split('/')[0]!;
  return isStorePathBaseName(base) ? `${storeDir}/${base}` : undefined;
}

/**
 * Resolves one root given as a logical path (`/nix/var/nix/profiles/system`, `/nix/store/…`, a directory).
 * Directories contribute one entry per link found inside them.
 */
export function resolveRoot(storeRoot: string, storeDir: string, logical: string, out: ResolvedRoot[], source = logical, depth = 0): void {
  let path = posix.normalize(logical);
  for (let hops = 0; hops <= MAX_LINKS; hops++) {
    const inStore = storePathPrefix(path, storeDir);
    if (inStore) return void out.push({ source, storePath: inStore });
    let st;
    try {
      st = lstatSync(join(storeRoot, path));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return void out.push({ source, problem: code === 'ENOENT' ? (hops ? `dangling link to ${path}` : 'does not exist') : `cannot read: ${code}` });
    }
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = readlinkSync(join(storeRoot, path));
      } catch (e) {
        return void out.push({ source, problem: `cannot read link: ${(e as NodeJS.ErrnoException).code}` });
      }
      path = target.startsWith('/') ? posix.normalize(target) : posix.join(dirname(path), target);
      continue;
    }
    if (st.isDirectory()) {
      if (depth >= MAX_DEPTH) return;
      let entries: string[];
      try {
        entries = readdirSync(join(storeRoot, path)).sort();
      } catch (e) {
        return void out.push({ source, problem: `cannot list: ${(e as NodeJS.ErrnoException).code}` });
      }
      for (const e of entries) {
        const child = posix.join(path, e);
        resolveRoot(storeRoot, storeDir, child, out, child, depth + 1);
      }
      return;
    }
    return void out.push({ source, problem: `${path} is not in ${storeDir}, nor a link or directory` });
  }
  out.push({ source, problem: 'too many levels of symbolic links' });
}

/** Every root of a cache: its configured ones, then the links in its gcroots directory (absent: none). */
export function resolveCacheRoots(storeRoot: string, storeDir: string, cache: string, configured: readonly string[]): ResolvedRoot[] {
  const out: ResolvedRoot[] = [];
  for (const r of configured) resolveRoot(storeRoot, storeDir, r, out);
  const gc = `/${GCROOTS_DIR}/${cache}`;
  try {
    if (lstatSync(join(storeRoot, gc)).isDirectory()) resolveRoot(storeRoot, storeDir, gc, out);
  } catch {
    // No gcroots directory yet: nothing published with `eris publish`.
  }
  return out;
}
