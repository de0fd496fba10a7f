/** What the push client knows of a path it pushes, and of the store it reads it from (closure.ts). */
import { isAbsolute } from 'node:path';

export interface LocalPath {
  path: string;
  /** `sha256:<nix32>`. */
  narHash: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
  deriver?: string;
  signatures: string[];
  ca?: string;
}

export interface NixSource {
  /** `--store` for Nix (a chroot store root, `daemon`, …); undefined: Nix's default. */
  store?: string;
  nixBin?: string;
  nixStoreBin?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Where a source's store is in this machine's file system: '' for Nix's default store (its paths as they are),
 * the root of a chroot store given with --store; undefined for any other store (a URI, `daemon`).
 */
export function localStoreRoot(s: NixSource): string | undefined {
  if (s.store === undefined) return '';
  return isAbsolute(s.store) ? s.store : undefined;
}
