/** `eris keygen NAME [SECRET_FILE PUBLIC_FILE]`: a Nix-compatible key pair, secret file mode 0600. */
import { writeFileSync, existsSync } from 'node:fs';
import { generateKeyPair } from '../../shared/signing.ts';

export function writeKeyPair(name: string, secretPath: string, publicPath: string): string {
  for (const p of [secretPath, publicPath]) if (existsSync(p)) throw new Error(`${p} already exists; not overwriting a key`);
  const kp = generateKeyPair(name);
  // Nix writes the key files without a trailing newline; so do we.
  writeFileSync(secretPath, kp.secret, { mode: 0o600, flag: 'wx' });
  writeFileSync(publicPath, kp.public, { mode: 0o644, flag: 'wx' });
  return kp.public;
}
