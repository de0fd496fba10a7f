/**
 * The string Nix signs for a path (ValidPathInfo::fingerprint):
 * `1;<storepath>;<narhash sha256:nix32>;<narsize>;<comma-joined full reference paths>`.
 */
export function fingerprint(storePath: string, narHash: string, narSize: number, references: readonly string[]): string {
  if (!narHash.startsWith('sha256:') || narHash.length !== 7 + 52) {
    throw new Error('fingerprint needs the NAR hash as sha256:<nix32>');
  }
  return `1;${storePath};${narHash};${narSize};${references.join(',')}`;
}
