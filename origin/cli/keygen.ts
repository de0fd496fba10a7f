/** `eris keygen NAME [SECRET_FILE PUBLIC_FILE]`: a Nix-compatible key pair, secret file mode 0600. */
import { writeFileSync, existsSync } from 'node:fs';
import { generateKeyPair } from '../../shared/signing.ts';
import { ConfigError } from '../config/validate.ts';
import type { CliIo } from './args.ts';

export function writeKeyPair(name: string, secretPath: string, publicPath: string): string {
  for (const p of [secretPath, publicPath]) if (existsSync(p)) throw new Error(`${p} already exists; not overwriting a key`);
  const kp = generateKeyPair(name);
  // Nix writes the key files without a trailing newline; so do we.
  writeFileSync(secretPath, kp.secret, { mode: 0o600, flag: 'wx' });
  writeFileSync(publicPath, kp.public, { mode: 0o644, flag: 'wx' });
  return kp.public;
}

export function run(argv: string[], io: CliIo): void {
  const [name, sec, pub, ...rest] = argv;
  if (!name || rest.length || (sec && !pub)) throw new ConfigError('usage: eris keygen NAME [SECRET_FILE PUBLIC_FILE]');
  const publicKey = writeKeyPair(name, sec ?? `${name}.sec`, pub ?? `${name}.pub`);
  io.stdout.write(`wrote ${sec ?? `${name}.sec`} and ${pub ?? `${name}.pub`}\npublic key: ${publicKey}\n`);
}
