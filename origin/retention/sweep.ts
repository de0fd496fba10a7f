/**
 * A retention sweep of one cache: read its roots (config roots, the links
 * push and `eris publish` made, pins), the store's reference graph and the
 * cache's fetch history, decide (plan.ts), then drop the chosen links — only
 * links directly in `gcroots/eris/<cache>/`, and only if they still point
 * where they pointed when the plan was made and were not renewed since.
 *
 * Dropping frees nothing by itself: Nix's GC does (the box's `nix.gc`
 * schedule), or `deleteDead`, which asks Nix to delete exactly the paths that
 * were in the dropped closures and that Nix itself finds dead.
 */
import { lstatSync, readlinkSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { spawn } from 'node:child_process';
import { openClosureDb, type ClosureDb } from '../store/closure-db.ts';
import { resolveRoot, storePathPrefix, type ResolvedRoot } from '../caches/roots.ts';
import { GCROOTS_DIR, gcRootsDirOf } from '../store/gc-roots.ts';
import { PINS_DIR, listPins } from './pins.ts';
import { storeDbPath } from '../store/store.ts';
import { freeable, planRetention, type RetentionGraph, type RetentionPlan, type RetentionPolicy, type RetentionRoot } from './plan.ts';
import { dirEntries } from '../store/dir-entries.ts';

/** What a sweep needs to know about a cache. */
export interface SweptCache extends RetentionPolicy {
  name: string;
  publish: 'all' | 'roots';
  /** The config's roots (never dropped). */
  roots: readonly string[];
}

export interface SweepTarget {
  storeRoot: string;
  storeDir: string;
  cache: SweptCache;
  /** Every configured cache: their roots keep paths alive too. */
  caches: readonly SweptCache[];
  /** Last fetch of each store path from this cache (ms), from usage.sqlite. */
  lastFetches: ReadonlyMap<string, number>;
}

export interface SweepReport {
  cache: string;
  policy: RetentionPolicy;
  now: number;
  plan: RetentionPlan;
  /** Paths no root eris can see holds once the dropped roots are gone, and their NAR bytes. */
  freeable: { paths: string[]; bytes: number };
}

/** A cache's roots as retention sees them; links it does not manage count as config roots (kept). */
export function retentionRoots(storeRoot: string, storeDir: string, cache: Pick<SweptCache, 'name' | 'roots'>): RetentionRoot[] {
  const out: RetentionRoot[] = [];
  const protectedRoot = (r: ResolvedRoot) => r.storePath && out.push({ source: r.source, storePath: r.storePath, kind: 'config', since: 0 });
  for (const c of cache.roots) {
    const resolved: ResolvedRoot[] = [];
    resolveRoot(storeRoot, storeDir, c, resolved);
    resolved.forEach(protectedRoot);
  }
  const dir = gcRootsDirOf(storeRoot, cache.name);
  const names = dirEntries(dir).sort();
  for (const n of names) {
    if (n.startsWith('.') || n === PINS_DIR) continue; // .new-…: a link being made
    const link = join(dir, n);
    try {
      const st = lstatSync(link);
      const target = st.isSymbolicLink() ? storePathPrefix(readlinkSync(link), storeDir) : undefined;
      if (target) {
        out.push({ source: `/${GCROOTS_DIR}/${cache.name}/${n}`, link, storePath: target, kind: 'pushed', since: st.mtimeMs });
        continue;
      }
    } catch {
      continue;
    }
    const resolved: ResolvedRoot[] = [];
    resolveRoot(storeRoot, storeDir, `/${GCROOTS_DIR}/${cache.name}/${n}`, resolved);
    resolved.forEach(protectedRoot);
  }
  for (const p of listPins(storeRoot, storeDir, cache.name)) {
    for (const r of p.revisions) out.push({ source: `/${GCROOTS_DIR}/${cache.name}/${PINS_DIR}/${p.name}/${basename(r.link)}`, link: r.link, storePath: r.storePath, kind: 'pin', pin: p.name, since: r.since });
  }
  return out;
}

/** The store DB as a retention graph, read lazily and remembered for one sweep. */
export function dbGraph(db: ClosureDb, lastFetches: ReadonlyMap<string, number>): RetentionGraph & { pathOf(id: number): string } {
  const refs = new Map<number, number[]>();
  const rows = new Map<number, { path: string; narSize: number }>();
  const row = (id: number) => {
    let r = rows.get(id);
    if (!r) {
      const got = db.byId(id);
      r = { path: got?.path ?? '', narSize: got?.narSize ?? 0 };
      rows.set(id, r);
    }
    return r;
  };
  return {
    idOf: (p) => db.byPath(p)?.id,
    references(id) {
      let r = refs.get(id);
      if (!r) refs.set(id, (r = db.referenceIds(id).filter((x) => x !== id)));
      return r;
    },
    narSize: (id) => row(id).narSize,
    lastFetch: (id) => lastFetches.get(row(id).path) ?? 0,
    pathOf: (id) => row(id).path,
  };
}

/** Every root outside the given links (logical paths) that keeps paths alive as far as eris can see: the store's gcroots and profiles, every cache's roots. */
function otherLiveRoots(t: SweepTarget, exceptLinks: ReadonlySet<string>): string[] {
  const found: ResolvedRoot[] = [];
  resolveRoot(t.storeRoot, t.storeDir, '/nix/var/nix/gcroots', found);
  resolveRoot(t.storeRoot, t.storeDir, '/nix/var/nix/profiles', found);
  for (const c of t.caches) for (const r of c.roots) resolveRoot(t.storeRoot, t.storeDir, r, found);
  return found.filter((r) => r.storePath && !exceptLinks.has(r.source)).map((r) => r.storePath!);
}

/** Decides what to drop (changes nothing). */
export async function planSweep(t: SweepTarget, now = Date.now()): Promise<SweepReport> {
  const db = openClosureDb(storeDbPath(t.storeRoot));
  try {
    return await db.snapshot(async () => {
      const g = dbGraph(db, t.lastFetches);
      const plan = planRetention(retentionRoots(t.storeRoot, t.storeDir, t.cache), g, t.cache, now);
      const droppedLinks = new Set(plan.dropped.map((d) => d.source));
      const droppedIds = plan.dropped.map((d) => g.idOf(d.storePath)).filter((x) => x !== undefined);
      const live = otherLiveRoots(t, droppedLinks).map((p) => g.idOf(p)).filter((x) => x !== undefined);
      const f = freeable(g, droppedIds, live);
      return { cache: t.cache.name, policy: { keepDays: t.cache.keepDays, maxBytes: t.cache.maxBytes }, now, plan, freeable: { paths: f.ids.map((id) => g.pathOf(id)).sort(), bytes: f.bytes } };
    });
  } finally {
    db.close();
  }
}

/** Removes the dropped links that are unchanged since the plan; returns those removed. */
export function dropRoots(report: SweepReport): string[] {
  const removed: string[] = [];
  for (const d of report.plan.dropped) {
    if (d.kind !== 'pushed' || !d.link) continue;
    try {
      const st = lstatSync(d.link);
      // Re-pushed (renewed) or re-pointed since the plan: leave it.
      if (st.mtimeMs !== d.since || readlinkSync(d.link) !== d.storePath) continue;
      unlinkSync(d.link);
      removed.push(d.source);
    } catch {}
  }
  return removed;
}

export interface NixStoreRun {
  (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** `nix-store ARGS` on the store at storeRoot (`--store DIR` for a store under another root). */
export function nixStoreRunner(storeRoot: string, nixStore = 'nix-store'): NixStoreRun {
  const storeArgs = storeRoot === '/' ? [] : ['--store', storeRoot];
  return (args) =>
    new Promise((resolve, reject) => {
      const child = spawn(nixStore, [...storeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr.length < 100_000 ? (stderr += d) : undefined));
      child.once('error', (e) => reject(new Error(`cannot run ${nixStore}: ${e.message}`)));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
}

export interface DeleteResult {
  /** Paths Nix deleted. */
  deleted: string[];
  /** Nix's own summary line ("N store paths deleted, X MiB freed"), when it printed one. */
  summary?: string;
  /** Candidates Nix found alive (still held by some root): left alone. */
  alive: string[];
}

/**
 * Asks Nix to delete those of `candidates` (paths eris published and dropped) that Nix itself finds dead
 * (`nix-store --gc --print-dead`), with `nix-store --delete` — which refuses live paths anyway.
 * Never names any other path. A path that came alive in between makes Nix stop; the rest is retried.
 */
export async function deleteDead(candidates: readonly string[], run: NixStoreRun): Promise<DeleteResult> {
  const wanted = new Set(candidates);
  const deleted: string[] = [];
  let summary: string | undefined;
  let dead: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const printed = await run(['--gc', '--print-dead']);
    if (printed.code !== 0) throw new Error(`nix-store --gc --print-dead failed: ${lastError(printed.stderr)}`);
    dead = printed.stdout.split('\n').filter((p) => wanted.has(p));
    if (!dead.length) break;
    const del = await run(['--delete', ...dead]);
    const gone = [...del.stderr.matchAll(/^deleting '([^']+)'$/gm)].map((m) => m[1]!).filter((p) => wanted.has(p));
    deleted.push(...gone);
    summary = /^\d+ store paths deleted.*$/m.exec(del.stdout)?.[0] ?? summary;
    for (const p of dead) wanted.delete(p);
    if (del.code === 0) break;
    if (!/still alive/.test(del.stderr)) throw new Error(`nix-store --delete failed: ${lastError(del.stderr)}`);
    // Something took a root meanwhile: ask again which of the rest are dead.
    for (const p of dead) if (!gone.includes(p)) wanted.add(p);
  }
  return { deleted, summary, alive: candidates.filter((p) => !deleted.includes(p)) };
}

const lastError = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error:')).pop() ?? stderr.trim().split('\n').pop() ?? '';
