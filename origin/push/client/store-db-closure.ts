/**
 * The closure `eris push` pushes, read straight from the store's database when the store is this machine's
 * (Nix's default store, or a chroot store root given with --store) and its DB opens read-only here: the
 * same rows `nix path-info --json --recursive` prints, without starting Nix (50-60 ms before anything else of
 * a push could happen, every push; a post-build hook pays it after every build). Anything else — another
 * kind of store, a DB this user cannot open, a path that is not valid — is left to `nix path-info`
 * (closure.ts), which also says what is wrong.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_STORE_DIR, parseStorePath } from '../../../shared/store-path.ts';
import { openStoreDb, rowFacts, type StoreDb } from '../../store/db.ts';
import { localStoreRoot, type LocalPath, type NixSource } from './local-path.ts';

/**
 * The store DB of `s`, when Nix's store for it is this machine's files under /nix/store: no --store and no
 * NIX_REMOTE other than the local daemon (NIX_STATE_DIR as Nix reads it), or --store naming a chroot
 * store root. Undefined for anything else (ssh-ng://, another store dir, …).
 */
export function storeDbOf(s: NixSource): string | undefined {
  const root = localStoreRoot(s);
  if (root === undefined) return undefined;
  if (root) return join(root, 'nix/var/nix/db/db.sqlite');
  const env = s.env ?? process.env;
  const remote = env.NIX_REMOTE ?? '';
  if (!['', 'daemon', 'local', 'auto'].includes(remote)) return undefined;
  if (env.NIX_STORE_DIR !== undefined && env.NIX_STORE_DIR !== DEFAULT_STORE_DIR) return undefined;
  return join(env.NIX_STATE_DIR || '/nix/var/nix', 'db/db.sqlite');
}

/** Opens the DB read-only; node:sqlite's one-time "experimental" warning is not this command's to print. */
function openQuietly(dbPath: string): StoreDb {
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (!String(typeof warning === 'string' ? warning : warning.message).startsWith('SQLite is an experimental feature')) {
      (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
    }
  }) as typeof process.emitWarning;
  try {
    return openStoreDb(dbPath, DEFAULT_STORE_DIR);
  } finally {
    process.emitWarning = emit;
  }
}

/**
 * The closure of `roots` (store paths) from the store DB of `s`, in no particular order; undefined when the
 * DB cannot answer for all of them (not this kind of store, not readable here, a root not valid, busy).
 */
export function closureFromStoreDb(s: NixSource, roots: readonly string[]): LocalPath[] | undefined {
  const dbPath = storeDbOf(s);
  if (dbPath === undefined || !existsSync(dbPath)) return undefined;
  let db: StoreDb;
  try {
    db = openQuietly(dbPath);
  } catch {
    return undefined;
  }
  try {
    return db.snapshot(() => walk(db, roots));
  } catch {
    return undefined;
  } finally {
    db.close();
  }
}

/** The closure's rows, one root or reference at a time; undefined at the first that is not a valid path. */
function walk(db: StoreDb, roots: readonly string[]): LocalPath[] | undefined {
  const out = new Map<string, LocalPath>();
  const todo = [...roots];
  while (todo.length) {
    const path = todo.pop()!;
    if (out.has(path)) continue;
    const row = db.byHashPart(parseStorePath(path, DEFAULT_STORE_DIR).hashPart);
    if (!row || row.path !== path) return undefined;
    const { sigs, ...facts } = rowFacts(row);
    const info: LocalPath = { path, ...facts, references: db.references(row.id), signatures: sigs };
    out.set(path, info);
    for (const r of info.references) if (!out.has(r)) todo.push(r);
  }
  return [...out.values()];
}
