/**
 * Keeps every cache's published set current without per-request work: every
 * `pollMs` (500 ms) it re-reads each cache's roots (readlink/readdir only) and
 * SQLite's data_version (which moves whenever Nix commits: a registration, a
 * GC); when either changed for a cache, that cache's set is recomputed in the
 * background while requests keep using the previous one. Computations run one
 * at a time. A failed computation (e.g. the DB locked) keeps the old set and is
 * retried at the next poll.
 */
import type { CacheConfig } from '../config/index.ts';
import type { Logger } from '../server/log.ts';
import { openClosureDb, type ClosureDb } from '../store/closure-db.ts';
import { computePublished, publishes, type ComputeOptions, type PublishedSet } from './published.ts';
import { startComputeWorker } from './worker-compute.ts';
import { resolveCacheRoots, type ResolvedRoot } from './roots.ts';

export interface Publisher {
  /** The current set of a cache (always defined after start() resolved). */
  get(cache: string): PublishedSet;
  /** Whether cache publishes the valid path with this hash part. */
  has(cache: string, hashPart: string): boolean;
  /** Recompute now if anything changed (what the timer does); resolves when a pass that started after the call is done. */
  refresh(): Promise<void>;
  close(): void;
}

export interface PublisherOptions {
  storeRoot: string;
  storeDir: string;
  dbPath: string;
  caches: readonly CacheConfig[];
  log: Logger;
  pollMs?: number;
  /**
   * The DB connection to compute on, in this thread (tests, the memory store). By default the sets are
   * computed in a worker thread with its own connection, and this thread only reads data_version.
   */
  db?: ClosureDb;
}

/** Stands in for the DB where no cache needs one (publish = "all" without exclusions reads nothing). */
const noDb: ClosureDb = {
  byPath: () => undefined,
  referenceIds: () => [],
  byId: () => undefined,
  allPaths: () => [],
  allRefs: () => [],
  dataVersion: () => 0,
  snapshot: (fn) => fn(),
  close: () => {},
};

const rootsKey = (roots: ResolvedRoot[]) => roots.map((r) => `${r.source}\0${r.storePath ?? ''}`).join('\n');

export async function startPublisher(o: PublisherOptions): Promise<Publisher> {
  // A cache publishing all without exclusions never needs the DB: its set is constant.
  const needsWork = (c: CacheConfig) => c.publish === 'roots' || c.exclude.length > 0;
  const ownDb = !o.db && o.caches.some(needsWork);
  const db: ClosureDb | undefined = o.db ?? (ownDb ? openClosureDb(o.dbPath) : undefined);
  const worker = ownDb ? startComputeWorker(o.dbPath) : undefined;
  const compute = (opts: ComputeOptions) => (worker ? worker.compute(opts) : computePublished(db ?? noDb, opts));
  const state = new Map<string, { set?: PublishedSet; version: number; rootsKey: string }>();
  let running: Promise<void> | undefined;
  let closed = false;

  async function pass(): Promise<void> {
    let version = 0;
    try {
      if (db) version = db.dataVersion();
    } catch (e) {
      o.log.warn({ msg: 'published sets: cannot read the store DB version; keeping the current sets', error: (e as Error).message });
      return;
    }
    for (const c of o.caches) {
      if (closed) return;
      const s = state.get(c.name) ?? { version: -1, rootsKey: '\u0001' };
      state.set(c.name, s);
      const roots = c.publish === 'roots' ? resolveCacheRoots(o.storeRoot, o.storeDir, c.name, c.roots) : [];
      const key = rootsKey(roots);
      if (s.set && (!needsWork(c) || (s.version === version && s.rootsKey === key))) continue;
      try {
        const set = await compute({ publish: c.publish, roots, exclude: c.exclude });
        const first = !s.set;
        Object.assign(s, { set, version, rootsKey: key });
        o.log.info({
          msg: first ? 'published set computed' : 'published set recomputed', cache: c.name, kind: set.kind,
          paths: set.kind === 'set' ? set.members.size : 'all', excluded: set.exclusions.length, ms: Math.round(set.computeMs),
        });
      } catch (e) {
        o.log.warn({ msg: 'published set: computation failed; keeping the previous set', cache: c.name, error: (e as Error).message });
      }
    }
  }

  // One pass at a time; refresh() always runs a pass that starts after it was called. Callers while a pass
  // runs share the one queued after it: a batch of pushed paths (each narinfo asks for its new root to be
  // published) costs one recomputation more, not one each.
  let queued: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    if (queued) return queued;
    const next: Promise<void> = (running ?? Promise.resolve()).then(() => {
      queued = undefined;
      return pass();
    }).finally(() => {
      if (running === next) running = undefined;
    });
    running = next;
    queued = next;
    return next;
  };

  await refresh();
  for (const c of o.caches) {
    // The first computation must succeed: serving with no set would be serving nothing (or everything).
    if (!state.get(c.name)?.set) {
      if (ownDb) db?.close();
      worker?.close();
      throw new Error(`cache ${c.name}: could not compute its published set`);
    }
  }
  const timer = setInterval(() => void (running ?? refresh()), o.pollMs ?? 500);
  timer.unref();

  const get = (cache: string) => {
    const s = state.get(cache)?.set;
    if (!s) throw new Error(`no published set for cache ${cache}`);
    return s;
  };
  return {
    get,
    has: (cache, hashPart) => publishes(get(cache), hashPart),
    refresh,
    close() {
      closed = true;
      clearInterval(timer);
      void (running ?? Promise.resolve()).finally(() => {
        if (ownDb) db?.close();
        worker?.close();
      });
    },
  };
}
