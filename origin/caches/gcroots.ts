/**
 * `eris publish` / `eris unpublish`: GC roots in
 * `<store_root>/nix/var/nix/gcroots/eris/<cache>/<hash>-<name>` → `/nix/store/<hash>-<name>`.
 * Nix's garbage collector searches gcroots/ recursively and follows links into
 * the store (on a chroot store too), so published paths and their closures are
 * kept; the origin reads the same directory as the cache's roots.
 */
import { readlinkSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { storeDbPath } from '../store/store.ts';
import { openClosureDb, type ClosureDb } from '../store/closure-db.ts';
import { addGcRoot, gcRootsDirOf } from '../store/gc-roots.ts';
import { resolveRoot, storePathPrefix, type ResolvedRoot } from './roots.ts';
import { cacheNameProblem } from '../../shared/caches.ts';
import { dirEntries } from '../store/dir-entries.ts';

export class PublishError extends Error {
  override name = 'PublishError';
}

/** A PATH argument (a store path, a path inside one, or a link such as ./result or a profile) → its store path. */
export function storePathOf(storeDir: string, arg: string, cwd = process.cwd()): string {
  const direct = storePathPrefix(arg, storeDir);
  if (direct) return direct;
  // A link given on the command line (./result, a profile) is a file as the shell sees it, even for a
  // chroot store; the store path it ends in names a path of the chosen store.
  const out: ResolvedRoot[] = [];
  resolveRoot('/', storeDir, resolve(cwd, arg), out);
  const hit = out.length === 1 ? out[0]! : undefined;
  if (!hit?.storePath) throw new PublishError(`${arg}: ${hit?.problem ?? 'not a store path or a link to one'}`);
  return hit.storePath;
}

function checkName(cache: string) {
  const problem = cacheNameProblem(cache);
  if (problem) throw new PublishError(`--cache ${cache}: ${problem}`);
}

/** The store's DB (read-only) for a command; a store that is not there is one line. */
export function openStoreForCommand(storeRoot: string): ClosureDb {
  try {
    return openClosureDb(storeDbPath(storeRoot));
  } catch (e) {
    throw new PublishError(`cannot open the store DB under ${storeRoot}: ${(e as Error).message}`);
  }
}

function validPaths(storeRoot: string, paths: string[]): Set<string> {
  const db = openStoreForCommand(storeRoot);
  try {
    return new Set(paths.filter((p) => db.byPath(p) !== undefined));
  } finally {
    db.close();
  }
}

/** Adds a GC root per path (idempotent); returns the store paths published. Every path must be valid first. */
export async function publish(o: { storeRoot: string; storeDir: string; cache: string; paths: string[]; cwd?: string }): Promise<string[]> {
  checkName(o.cache);
  const storePaths = o.paths.map((p) => storePathOf(o.storeDir, p, o.cwd));
  const valid = validPaths(o.storeRoot, storePaths);
  const invalid = storePaths.filter((p) => !valid.has(p));
  if (invalid.length) throw new PublishError(`not valid in the store at ${o.storeRoot}: ${invalid.join(' ')} (copy it there first, e.g. nix copy --to ssh://…)`);
  for (const p of storePaths) await addGcRoot(o.storeRoot, o.cache, p);
  return storePaths;
}

/** Removes the GC roots of these paths from the cache's directory; returns those removed. Unknown paths are an error. */
export function unpublish(o: { storeRoot: string; storeDir: string; cache: string; paths: string[]; cwd?: string }): string[] {
  checkName(o.cache);
  const dir = gcRootsDirOf(o.storeRoot, o.cache);
  const entries = dirEntries(dir);
  const links = new Map<string, string[]>();
  for (const e of entries) {
    let target: string;
    try {
      target = readlinkSync(join(dir, e));
    } catch {
      continue;
    }
    const sp = storePathPrefix(target, o.storeDir);
    if (sp) links.set(sp, [...(links.get(sp) ?? []), join(dir, e)]);
  }
  const wanted = o.paths.map((arg) => {
    // A path already collected may be named by its store path only; links to it are still found.
    const direct = storePathPrefix(arg, o.storeDir);
    return direct ?? storePathOf(o.storeDir, arg, o.cwd);
  });
  const missing = wanted.filter((p) => !links.has(p));
  if (missing.length) throw new PublishError(`not published in cache ${o.cache}: ${missing.join(' ')}`);
  for (const p of wanted) for (const l of links.get(p) ?? []) unlinkSync(l);
  return wanted;
}
