/** Whether this process may write a directory, and so whether it owns a store (Nix then opens it directly, not through the daemon). */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

export function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The store under `root` is ours: its store directory and its DB are writable by this process. */
export const ownsStore = (root: string) => writable(join(root, 'nix/store')) && writable(join(root, 'nix/var/nix/db'));
