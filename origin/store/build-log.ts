/**
 * Build logs in the store's log directory, `<root>/nix/var/log/nix/drvs/<2>/<rest>`,
 * plain or bzip2-compressed (as Nix keeps them), read as plain text.
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isStorePathBaseName } from '../../shared/store-path.ts';

export interface BuildLog {
  /** The log text, decompressed. */
  open(): Readable;
}

export function findBuildLog(root: string, drvBaseName: string): BuildLog | undefined {
  // The name shape is checked, so the path cannot leave the log directory.
  if (!drvBaseName.endsWith('.drv') || !isStorePathBaseName(drvBaseName)) throw new Error('invalid derivation name');
  const plain = join(root, 'nix/var/log/nix/drvs', drvBaseName.slice(0, 2), drvBaseName.slice(2));
  if (existsSync(plain)) return { open: () => createReadStream(plain) };
  if (existsSync(plain + '.bz2')) return { open: () => bunzip2(plain + '.bz2') };
  return undefined;
}

/** Node has no bzip2 codec; the bzip2 program does. The stream errors if bzip2 fails. */
function bunzip2(path: string): Readable {
  const child = spawn('bzip2', ['-dc', path], { stdio: ['ignore', 'pipe', 'ignore'] });
  const stream = child.stdout;
  child.once('exit', (code) => {
    if (code !== 0) stream.destroy(new Error(`bzip2 exited with ${code}`));
  });
  stream.once('close', () => child.exitCode === null && child.kill());
  return stream;
}
