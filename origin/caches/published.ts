/**
 * What a cache publishes: the closure (over the DB's Refs) of its roots, or the
 * whole store, minus exclusions.
 *
 * Exclusions never leave a hole in a closure: a path whose name matches an
 * `exclude` pattern is not published, and neither is any path whose closure
 * contains one (it would be useless to a client, which could not fetch the
 * excluded reference, and it would reveal the excluded path's hash). So the
 * published set is always closed under references. Each excluded path is listed
 * with its reason: `eris published` and `eris doctor` show them.
 *
 * The walk runs in slices of a few milliseconds (setImmediate between them), so
 * requests keep being answered while a large closure is computed; it reads the
 * DB in one read transaction, so it sees one consistent state.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ClosureDb, NodeRow } from '../store/closure-db.ts';
import { HASH_PART_LENGTH, storePathBaseName } from '../../shared/store-path.ts';
import type { ResolvedRoot } from './roots.ts';

export interface Exclusion {
  storePath: string;
  /** `matches "<pattern>"` or `depends on <excluded store path>`. */
  reason: string;
}

export interface PublishedSet {
  /** `all`: every valid path except `excluded`; `set`: exactly `members`. */
  kind: 'all' | 'set';
  /** Hash parts of the published paths (kind `set`). */
  members: ReadonlySet<string>;
  /** Hash parts of unpublished valid paths (kind `all`: the exclusions). */
  excludedHashes: ReadonlySet<string>;
  /** Base names (`<hash>-<name>.drv`) of the derivers of published paths: their build logs are published too. */
  derivers: ReadonlySet<string>;
  /** Kind `all`: base names of the derivers of excluded paths, whose build logs are not published. */
  excludedDerivers: ReadonlySet<string>;
  exclusions: Exclusion[];
  /** Sum of NarSize over the members (kind `set`). */
  narBytes: number;
  roots: ResolvedRoot[];
  /** When it was computed and how long that took. */
  computedAt: number;
  computeMs: number;
}

/** Whether the set holds the path with this hash part (the caller knows the path is valid). */
export function publishes(set: PublishedSet, hashPart: string): boolean {
  return set.kind === 'all' ? !set.excludedHashes.has(hashPart) : set.members.has(hashPart);
}

/** Glob (`*`, `?`, `[…]`) → anchored RegExp over the name after the hash. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += '[' + (body.startsWith('!') ? '^' + body.slice(1) : body) + ']';
        i = end;
      }
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const nameOf = (path: string) => storePathBaseName(path).slice(HASH_PART_LENGTH + 1);
const hashOf = (path: string) => storePathBaseName(path).slice(0, HASH_PART_LENGTH);

export interface ComputeOptions {
  publish: 'all' | 'roots';
  roots: ResolvedRoot[];
  exclude: readonly string[];
  /** Work this long, then let the event loop run (ms). */
  sliceMs?: number;
}

/** What one computation's steps share. */
interface Pass {
  db: ClosureDb;
  o: ComputeOptions;
  started: number;
  /** The pattern a path's name matches, if any. */
  matching: (path: string) => string | undefined;
  excludes: boolean;
  /** Lets the event loop run once the current slice of work is used up. */
  maybeYield: () => Promise<void>;
}

/** Computes a cache's published set from the DB, in one read transaction. */
export async function computePublished(db: ClosureDb, o: ComputeOptions): Promise<PublishedSet> {
  const started = performance.now();
  const sliceMs = o.sliceMs ?? 4;
  let sliceStart = performance.now();
  const maybeYield = async () => {
    if (performance.now() - sliceStart < sliceMs) return;
    await yieldToLoop();
    sliceStart = performance.now();
  };
  const patterns = o.exclude.map((g) => ({ g, re: globToRegExp(g) }));
  const matching = (path: string) => patterns.find((p) => p.re.test(nameOf(path)))?.g;
  const pass: Pass = { db, o, started, matching, excludes: patterns.length > 0, maybeYield };
  return db.snapshot(() => (o.publish === 'all' ? publishAll(pass) : publishRoots(pass)));
}

/** `publish = "all"`: every valid path except the matches and their dependents (walking the reverse edges from each match). */
async function publishAll({ db, o, started, matching, excludes, maybeYield }: Pass): Promise<PublishedSet> {
  const base = { roots: o.roots, computedAt: Date.now() };
  if (!excludes) {
    return { ...base, kind: 'all', members: new Set(), excludedHashes: new Set(), derivers: new Set(), excludedDerivers: new Set(), exclusions: [], narBytes: 0, computeMs: performance.now() - started };
  }
  const paths = new Map<number, string>();
  const deriverOf = new Map<string, string>();
  const seeds: number[] = [];
  const reasons = new Map<number, string>();
  let n = 0;
  for (const row of db.allPaths()) {
    paths.set(row.id, row.path);
    if (row.deriver) deriverOf.set(row.path, storePathBaseName(row.deriver));
    const g = matching(row.path);
    if (g !== undefined) {
      seeds.push(row.id);
      reasons.set(row.id, `matches "${g}"`);
    }
    if (++n % 4096 === 0) await maybeYield();
  }
  const referrers = new Map<number, number[]>();
  if (seeds.length) {
    for (const { referrer, reference } of db.allRefs()) {
      if (referrer !== reference) {
        const list = referrers.get(reference);
        if (list) list.push(referrer);
        else referrers.set(reference, [referrer]);
      }
      if (++n % 4096 === 0) await maybeYield();
    }
  }
  const exclusions = await taint(seeds, reasons, (id) => referrers.get(id) ?? [], (id) => paths.get(id)!, maybeYield);
  return {
    ...base, kind: 'all', members: new Set(), excludedHashes: new Set(exclusions.map((e) => hashOf(e.storePath))),
    derivers: new Set(), excludedDerivers: new Set(exclusions.map((e) => deriverOf.get(e.storePath)).filter((d): d is string => d !== undefined)),
    exclusions, narBytes: 0, computeMs: performance.now() - started,
  };
}

/** `publish = "roots"`: the closure of the roots, minus the matches and what depends on them within it. */
async function publishRoots(pass: Pass): Promise<PublishedSet> {
  const { db, o, started, maybeYield } = pass;
  const base = { roots: o.roots, computedAt: Date.now() };
  const { ids, refsOf } = await closureOfRoots(pass);
  const nodes = new Map<number, NodeRow>();
  for (let i = 0; i < ids.length; i++) {
    const row = db.byId(ids[i]!);
    if (row) nodes.set(row.id, row);
    if ((i & 1023) === 1023) await maybeYield();
  }
  const out = new Set<number>();
  const exclusions = await excludedFromClosure(pass, nodes, refsOf, out);
  const members = new Set<string>();
  const derivers = new Set<string>();
  let narBytes = 0;
  for (const [id, row] of nodes) {
    if (out.has(id)) continue;
    members.add(hashOf(row.path));
    if (row.deriver) derivers.add(storePathBaseName(row.deriver));
    narBytes += Number(row.narSize ?? 0);
  }
  return { ...base, kind: 'set', members, excludedHashes: new Set(), derivers, excludedDerivers: new Set(), exclusions, narBytes, computeMs: performance.now() - started };
}

/**
 * The ids of the roots' closure, breadth first; with exclusions, each path's references too (for the
 * exclusion pass). A root that is not a valid path gets its `problem` set.
 */
async function closureOfRoots({ db, o, excludes, maybeYield }: Pass): Promise<{ ids: number[]; refsOf: Map<number, number[]> }> {
  const seen = new Set<number>();
  const refsOf = new Map<number, number[]>();
  const queue: number[] = [];
  for (const r of o.roots) {
    if (!r.storePath) continue;
    const row = db.byPath(r.storePath);
    if (!row) {
      r.problem = `${r.storePath} is not a valid path in the store`;
      continue;
    }
    if (!seen.has(row.id)) {
      seen.add(row.id);
      queue.push(row.id);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]!;
    const ids = db.referenceIds(id).filter((r) => r !== id);
    for (const ref of ids) {
      if (!seen.has(ref)) {
        seen.add(ref);
        queue.push(ref);
      }
    }
    if (excludes) refsOf.set(id, ids);
    if ((i & 255) === 255) await maybeYield();
  }
  return { ids: queue, refsOf };
}

/** Within a closure: the paths matching a pattern and those that reach one, added to `out`, with their reasons. */
async function excludedFromClosure({ matching, excludes, maybeYield }: Pass, nodes: Map<number, NodeRow>, refsOf: Map<number, number[]>, out: Set<number>): Promise<Exclusion[]> {
  if (!excludes) return [];
  const seeds: number[] = [];
  const reasons = new Map<number, string>();
  for (const [id, row] of nodes) {
    const g = matching(row.path);
    if (g !== undefined) {
      seeds.push(id);
      reasons.set(id, `matches "${g}"`);
    }
  }
  if (!seeds.length) return [];
  const referrers = new Map<number, number[]>();
  for (const [id, ids] of refsOf) {
    for (const ref of ids) {
      const list = referrers.get(ref);
      if (list) list.push(id);
      else referrers.set(ref, [id]);
    }
  }
  return taint(seeds, reasons, (id) => referrers.get(id) ?? [], (id) => nodes.get(id)!.path, maybeYield, out);
}

/**
 * From the paths matching a pattern, every path that reaches one of them (over `referrersOf`);
 * each is reported with the first excluded path found below it.
 */
async function taint(
  seeds: number[],
  reasons: Map<number, string>,
  referrersOf: (id: number) => number[],
  pathOf: (id: number) => string,
  maybeYield: () => Promise<void>,
  out = new Set<number>(),
): Promise<Exclusion[]> {
  const cause = new Map<number, number>();
  const queue = [...seeds];
  for (const s of seeds) out.add(s);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]!;
    for (const up of referrersOf(id)) {
      if (out.has(up)) continue;
      out.add(up);
      cause.set(up, cause.get(id) ?? id);
      queue.push(up);
    }
    if ((i & 1023) === 1023) await maybeYield();
  }
  return queue.map((id) => ({
    storePath: pathOf(id),
    reason: reasons.get(id) ?? `depends on ${pathOf(cause.get(id)!)}`,
  })).sort((a, b) => a.storePath.localeCompare(b.storePath));
}
