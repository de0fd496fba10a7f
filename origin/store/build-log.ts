/**
 * Build logs in the store's log directory, `<root>/nix/var/log/nix/drvs/<2>/<rest>`,
 * plain or bzip2-compressed (as Nix keeps them), read as plain text. A log is found by
 * its derivation's base name (`<hash>-<name>.drv`) or, as harmonia serves `/log/<hash>`,
 * by the derivation's hash part alone.
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isHashPart, isStorePathBaseName } from '../../shared/store-path.ts';

export interface BuildLog {
  /** The derivation's base name (`<hash>-<name>.drv`), also when it was asked for by hash. */
  drv: string;
  /** The log text, decompressed. */
  open(): Readable;
}

/** A derivation's base name or hash part, or why it is neither (the route's 400). */
export function buildLogNameProblem(drvOrHash: string): string | undefined {
  if (isHashPart(drvOrHash) || (drvOrHash.endsWith('.drv') && isStorePathBaseName(drvOrHash))) return undefined;
  return 'malformed derivation name: expected <hash>-<name>.drv or the 32-character hash';
}

export function findBuildLog(root: string, drvOrHash: string): BuildLog | undefined {
  // The name shape is checked, so the path cannot leave the log directory.
  if (buildLogNameProblem(drvOrHash)) throw new Error('invalid derivation name');
  const dir = join(root, 'nix/var/log/nix/drvs', drvOrHash.slice(0, 2));
  const drv = isHashPart(drvOrHash) ? byHash(dir, drvOrHash) : drvOrHash;
  if (!drv) return undefined;
  const plain = join(dir, drv.slice(2));
  if (existsSync(plain)) return { drv, open: () => createReadStream(plain) };
  if (existsSync(plain + '.bz2')) return { drv, open: () => bunzip2(plain + '.bz2') };
  return undefined;
}

/** The derivation whose log the directory holds under this hash (one hash part names one derivation). */
function byHash(dir: string, hashPart: string): string | undefined {
  const prefix = hashPart.slice(2) + '-';
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const f of names.sort()) {
    if (!f.startsWith(prefix)) continue;
    const drv = hashPart.slice(0, 2) + (f.endsWith('.bz2') ? f.slice(0, -4) : f);
    if (drv.endsWith('.drv') && isStorePathBaseName(drv)) return drv;
  }
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
