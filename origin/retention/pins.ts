/**
 * Pins: named roots that retention never drops, like Cachix's. A pin is a
 * directory of revisions, each a GC root:
 * `<store_root>/nix/var/nix/gcroots/eris/<cache>/pins/<name>/<seq>-<hash>-<name>` → the store path.
 * Nix's GC and the cache's published set find them like any other link under
 * the cache's gcroots directory. Pinning a new path adds a revision; with
 * `keepRevisions` only the newest N stay (older links go, so their paths become
 * collectable unless something else holds them). Without it, every revision stays.
 */
import { lstatSync, mkdirSync, readlinkSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { storePathBaseName } from '../../shared/store-path.ts';
import { storePathPrefix } from '../caches/roots.ts';
import { addGcRootExclusive, gcRootsDirOf } from '../store/gc-roots.ts';
import { keepRevisionsProblem, pinNameProblem, type PinRequest, type PinResponse } from '../../shared/pins.ts';
import { dirEntries } from '../store/dir-entries.ts';

export const PINS_DIR = 'pins';

export class PinError extends Error {
  override name = 'PinError';
}

export interface PinRevision {
  seq: number;
  link: string;
  storePath: string;
  /** When it was pinned (the link's mtime), ms. */
  since: number;
}

export interface Pin {
  name: string;
  /** Oldest first. */
  revisions: PinRevision[];
}

export const pinsDirOf = (storeRoot: string, cache: string) => join(gcRootsDirOf(storeRoot, cache), PINS_DIR);

function readRevisions(dir: string, storeDir: string): PinRevision[] {
  const out: PinRevision[] = [];
  const names = dirEntries(dir);
  for (const n of names) {
    const m = /^(\d{1,12})-/.exec(n);
    if (!m) continue;
    const link = join(dir, n);
    try {
      const storePath = storePathPrefix(readlinkSync(link), storeDir);
      if (storePath) out.push({ seq: Number(m[1]), link, storePath, since: lstatSync(link).mtimeMs });
    } catch {}
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** Every pin of a cache, by name. */
export function listPins(storeRoot: string, storeDir: string, cache: string): Pin[] {
  const dir = pinsDirOf(storeRoot, cache);
  const names = dirEntries(dir).filter((n) => !pinNameProblem(n)).sort();
  return names.map((name) => ({ name, revisions: readRevisions(join(dir, name), storeDir) }));
}

export interface PinResult {
  /** The revision now newest (a new one, or the newest already pointing at the path). */
  revision: PinRevision;
  added: boolean;
  /** Revisions removed by keepRevisions, oldest first. */
  removed: PinRevision[];
}

/**
 * Makes `storePath` (valid: the caller checked) the newest revision of pin `name`, then keeps the newest
 * `keepRevisions` (all when undefined). Pinning the path that is already newest adds nothing.
 */
export function pin(o: { storeRoot: string; storeDir: string; cache: string; name: string; storePath: string; keepRevisions?: number }): PinResult {
  const problem = pinNameProblem(o.name);
  if (problem) throw new PinError(problem);
  const bad = o.keepRevisions === undefined ? undefined : keepRevisionsProblem(o.keepRevisions);
  if (bad) throw new PinError(`--${bad}`);
  const dir = join(pinsDirOf(o.storeRoot, o.cache), o.name);
  mkdirSync(dir, { recursive: true });
  let revisions = readRevisions(dir, o.storeDir);
  let newest = revisions[revisions.length - 1];
  let added = false;
  if (newest?.storePath !== o.storePath) {
    for (let seq = (newest?.seq ?? 0) + 1; !added; seq++) {
      const link = join(dir, `${String(seq).padStart(8, '0')}-${storePathBaseName(o.storePath)}`);
      try {
        added = addGcRootExclusive(link, o.storePath);
      } catch (e) {
        throw new PinError(`cannot write ${link}: ${(e as NodeJS.ErrnoException).code}`);
      }
    }
    revisions = readRevisions(dir, o.storeDir);
    newest = revisions[revisions.length - 1]!;
  }
  const removed = o.keepRevisions === undefined ? [] : revisions.slice(0, Math.max(0, revisions.length - o.keepRevisions));
  for (const r of removed) unlinkSync(r.link);
  return { revision: newest!, added, removed };
}

/** Removes a pin and all its revisions; returns them. */
export function unpin(o: { storeRoot: string; storeDir: string; cache: string; name: string }): PinRevision[] {
  const problem = pinNameProblem(o.name);
  if (problem) throw new PinError(problem);
  const dir = join(pinsDirOf(o.storeRoot, o.cache), o.name);
  const revisions = readRevisions(dir, o.storeDir);
  try {
    lstatSync(dir);
  } catch {
    throw new PinError(`cache ${o.cache} has no pin named ${o.name}`);
  }
  rmSync(dir, { recursive: true, force: true });
  return revisions;
}

/** Pins over HTTP (`eris push --pin`, shared/pins.ts) on the store at storeRoot; the route checks the path is published first. */
export interface PinService {
  pin(cache: string, req: PinRequest): PinResponse;
}

export function createPinService(o: { storeRoot: string; storeDir: string }): PinService {
  return {
    pin(cache, req) {
      const r = pin({ ...o, cache, name: req.name, storePath: req.storePath, keepRevisions: req.keepRevisions });
      return { name: req.name, storePath: req.storePath, revision: r.revision.seq, added: r.added, removed: r.removed.map((x) => x.storePath) };
    },
  };
}
