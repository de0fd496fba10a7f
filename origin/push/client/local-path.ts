/** What the push client knows of a path it pushes, and of the store it reads it from (closure.ts). */
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
