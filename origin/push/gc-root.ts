/**
 * GC roots of pushed paths: `<store_root>/nix/var/nix/gcroots/eris/<cache>/<hash>-<name>`
 * → the store path. The caches' published sets read their roots from the same
 * directory (`eris publish` writes there too). The root is made before the
 * import, so a garbage collection running meanwhile cannot take the new path.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { storePathBaseName } from '../../shared/store-path.ts';

export const gcRootDir = (storeRoot: string, cache: string) => join(storeRoot, 'nix/var/nix/gcroots/eris', cache);

export async function addGcRoot(storeRoot: string, cache: string, storePath: string): Promise<boolean> {
  const dir = gcRootDir(storeRoot, cache);
  const link = join(dir, storePathBaseName(storePath));
  try {
    if ((await readlink(link)) === storePath) return false;
  } catch {}
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.new-${randomBytes(6).toString('hex')}`);
  await symlink(storePath, tmp);
  await rename(tmp, link);
  return true;
}

export async function removeGcRoot(storeRoot: string, cache: string, storePath: string): Promise<void> {
  await rm(join(gcRootDir(storeRoot, cache), storePathBaseName(storePath)), { force: true });
}
