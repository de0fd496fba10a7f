/**
 * eris's GC roots: `<store_root>/nix/var/nix/gcroots/eris/<cache>/<hash>-<name>` → the store path.
 * Push makes one before it imports a path (so a garbage collection running meanwhile cannot take it),
 * `eris publish` by hand; the caches read the same directory as their roots. Nix's garbage collector
 * searches gcroots/ recursively and follows the links into the store (on a chroot store too).
 * The one module that writes them.
 */
import { randomBytes } from 'node:crypto';
import { symlinkSync } from 'node:fs';
import { lutimes, mkdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { storePathBaseName } from '../../shared/store-path.ts';

/** Where a cache's GC roots are, relative to the store root. */
export const GCROOTS_DIR = 'nix/var/nix/gcroots/eris';

export const gcRootsDirOf = (storeRoot: string, cache: string) => join(storeRoot, GCROOTS_DIR, cache);

/** The link that roots `storePath` for `cache`. */
export const gcRootOf = (storeRoot: string, cache: string, storePath: string) => join(gcRootsDirOf(storeRoot, cache), storePathBaseName(storePath));

/**
 * Roots `storePath` for `cache`; true when the link is new. A new root is one symlink() (atomic: a reader
 * sees no link or the whole link; a push waits for this call, path after path). A link that points
 * elsewhere is replaced by one made beside (a dot name retention skips) and renamed over. An existing link
 * is renewed (its time set to now): retention's keep_days counts a push or publish as a use.
 */
export async function addGcRoot(storeRoot: string, cache: string, storePath: string): Promise<boolean> {
  const link = gcRootOf(storeRoot, cache, storePath);
  const dir = gcRootsDirOf(storeRoot, cache);
  for (let tries = 0; ; tries++) {
    try {
      await symlink(storePath, link);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && tries === 0) await mkdir(dir, { recursive: true });
      else if (code === 'EEXIST') break;
      else throw e;
    }
  }
  if ((await readlink(link).catch(() => undefined)) === storePath) {
    const now = new Date();
    await lutimes(link, now, now).catch(() => {});
    return false;
  }
  const tmp = join(dir, `.new-${randomBytes(6).toString('hex')}`);
  await symlink(storePath, tmp);
  await rename(tmp, link);
  return true;
}

/**
 * Makes the root `link` → `storePath` only if no file has that name (a pin's numbered revision: two pins at
 * once each get their own number); false when the name is taken.
 */
export function addGcRootExclusive(link: string, storePath: string): boolean {
  try {
    symlinkSync(storePath, link);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

export async function removeGcRoot(storeRoot: string, cache: string, storePath: string): Promise<void> {
  await rm(gcRootOf(storeRoot, cache, storePath), { force: true });
}
