/**
 * The live Nix store as eris sees it: path metadata from db.sqlite, NAR bytes
 * from the files under `<root><storeDir>`. Only paths valid in the DB are served.
 */
import { join } from 'node:path';
import { existsSync, lstatSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { isHashPart, storePathBaseName } from '../../shared/store-path.ts';
import { parseRealisationId, type Realisation } from '../../shared/realisation.ts';
import type { PathMetadata } from '../../shared/narinfo.ts';
import { openStoreDb, rowFacts, StoreBusyError, type StoreDb } from './db.ts';
import { checkedNar, narBuffer, narListing, narStream, type ListingNode } from './nar-stream.ts';
import { findBuildLog, type BuildLog } from './build-log.ts';

/** A valid path as the store DB has it: references and deriver are full store paths, sigs those already stored. */
export interface PathInfo extends PathMetadata {
  hashPart: string;
}

export interface Store {
  readonly storeDir: string;
  /**
   * Path info by hash part; undefined when no valid path has it. Throws on malformed input, and
   * StoreBusyError when Nix holds the DB lock for longer than busyTimeoutMs (waiting without blocking).
   */
  lookup(hashPart: string): Promise<PathInfo | undefined>;
  /**
   * lookup's answer without waiting: from memory, or one synchronous DB read. Throws where lookup throws,
   * and StoreBusyError at once while Nix holds the DB lock (lookup would wait and retry). For the hot paths
   * below Hono, which hand anything but a plain answer to the app.
   */
  lookupNow(hashPart: string): PathInfo | undefined;
  /**
   * Whether the files of a path returned by lookup are there to be served: `present`; `gone` when
   * they are missing because the path is no longer valid (garbage-collected between lookup and now,
   * a miss); `broken` when the DB still registers it but the files are missing (an internal failure).
   */
  narState(info: PathInfo): Promise<'present' | 'gone' | 'broken'>;
  /** The NAR of a path returned by lookup. The stream errors if the path changes under it. */
  nar(info: PathInfo): Readable;
  /** The NAR (or bytes [start, end) of it) as chunks, for writing straight to a socket. */
  narChunks(info: PathInfo, range?: { start: number; end: number }): AsyncGenerator<Buffer>;
  /**
   * The whole NAR as one buffer, read synchronously (for small paths only: see nar-stream.ts's narBuffer).
   * Kept in memory afterwards (narMemoryBytes): the caller checks first that the path is present (narState).
   */
  narBuffer(info: PathInfo): Promise<Buffer>;
  /**
   * narBuffer's answer when it is in memory and the path's files are still there (one lstat); undefined
   * when not in memory. Throws when the files are gone (the caller asks narState and narBuffer instead).
   */
  narBufferNow(info: PathInfo): Buffer | undefined;
  /** The `.ls` listing of a path. */
  listing(info: PathInfo): Promise<{ version: 1; root: ListingNode }>;
  /** The build log of a derivation (by base name, or by hash part alone), if the log directory has one. Throws on a malformed name. */
  buildLog(drvOrHash: string): BuildLog | undefined;
  /** True while the path is still valid in the DB. */
  isValid(storePath: string): Promise<boolean>;
  /** The realisation with this id (`sha256:<hex>!<output>`), if the store has it. */
  realisation(id: string): Promise<Realisation | undefined>;
  /** Checks the DB for writes on the next lookup instead of within versionCheckMs: after this process had Nix write (an import). */
  refresh?(): void;
  close(): void;
}

export interface StoreOptions {
  /** File-system root the store lives under: `/` for the machine's store, a dir for a chroot store. */
  root: string;
  /** The logical store directory (what paths say), `/nix/store`. */
  storeDir: string;
  busyTimeoutMs?: number;
  /** Path infos (and misses) kept in memory until Nix next writes to the DB. */
  cacheEntries?: number;
  /** How stale a cached answer may be, at most: the DB's change counter is read this often (ms). */
  versionCheckMs?: number;
  /** Bytes of small NARs (narBuffer's) kept in memory, least recently used out; 0 keeps none. */
  narMemoryBytes?: number;
}

/** narMemoryBytes by default: a few thousand small paths' NARs per process. */
export const NAR_MEMORY_BYTES = 16 * 1024 * 1024;

export function storeDbPath(root: string): string {
  return join(root, 'nix/var/nix/db/db.sqlite');
}

/** Checks that `root` holds a Nix store; returns a one-line reason when it does not. */
export function checkStoreRoot(root: string, storeDir: string): string | undefined {
  const dir = join(root, storeDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return `no Nix store at ${dir}`;
  const db = storeDbPath(root);
  if (!existsSync(db)) return `no Nix store database at ${db}`;
  return undefined;
}

export function createStore(options: StoreOptions): Store {
  const { root, storeDir } = options;
  const problem = checkStoreRoot(root, storeDir);
  if (problem) throw new Error(problem);
  const db: StoreDb = openStoreDb(storeDbPath(root), storeDir);
  const busyBudgetMs = options.busyTimeoutMs ?? 2000;

  /** Runs a DB read; while Nix holds a lock, retries with growing pauses (the event loop keeps serving others). */
  async function patiently<T>(read: () => T): Promise<T> {
    const deadline = performance.now() + busyBudgetMs;
    for (let pause = 5; ; pause = Math.min(pause * 2, 100)) {
      try {
        return read();
      } catch (e) {
        if (!(e instanceof StoreBusyError) || performance.now() + pause > deadline) throw e;
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  // Lookups are answered from memory while the DB is unchanged: SQLite's data_version moves on every
  // commit by another connection (a registration, a GC), and then the whole cache is dropped. A push
  // or a GC is therefore visible within versionCheckMs (20 ms).
  const maxEntries = options.cacheEntries ?? 100_000;
  const cache = new Map<string, PathInfo | null>();
  let seenVersion = -1;
  let checkedAt = Number.NEGATIVE_INFINITY;
  const versionCheckMs = options.versionCheckMs ?? 20;

  function query(hashPart: string): PathInfo | undefined {
    const row = db.byHashPart(hashPart);
    if (!row) return undefined;
    return { storePath: row.path, hashPart, ...rowFacts(row), references: db.references(row.id) };
  }

  /** The cached answer (null: known miss), or undefined when the DB must be asked. Drops the cache when Nix wrote. */
  function cacheHit(hashPart: string): PathInfo | null | undefined {
    // Asking SQLite costs two file locks, so ask at most every versionCheckMs.
    const now = performance.now();
    if (now - checkedAt >= versionCheckMs) {
      const version = db.dataVersion(); // may throw StoreBusyError: then nothing is cached either
      checkedAt = now;
      if (version !== seenVersion) {
        cache.clear();
        seenVersion = version;
      }
    }
    return cache.get(hashPart);
  }

  // Small NARs by store path and NAR hash. A valid path's files never change (Nix makes them read-only and
  // registers their hash), and a path deleted and registered again with other contents has another NAR hash:
  // an entry is right for as long as its path is valid with that hash, which every caller checks first.
  const nars = new Map<string, Buffer>();
  const narMax = options.narMemoryBytes ?? NAR_MEMORY_BYTES;
  let narBytes = 0;
  const narKey = (info: PathInfo) => `${info.storePath}\0${info.narHash}`;
  function keepNar(key: string, nar: Buffer) {
    if (nar.length > narMax / 16 || nars.has(key)) return;
    // A buffer of its own: a small one may be a slice of Node's shared allocation pool.
    const own = Buffer.allocUnsafeSlow(nar.length);
    nar.copy(own);
    nars.set(key, own);
    narBytes += own.length;
    for (const [k, b] of nars) {
      if (narBytes <= narMax) break;
      nars.delete(k);
      narBytes -= b.length;
    }
  }

  /** A kept NAR, moved to the most recently used end. */
  function keptNar(key: string): Buffer | undefined {
    const kept = nars.get(key);
    if (kept) {
      nars.delete(key);
      nars.set(key, kept);
    }
    return kept;
  }

  function lookupNow(hashPart: string): PathInfo | undefined {
    if (!isHashPart(hashPart)) throw new Error(`invalid store path hash ${JSON.stringify(hashPart)}`);
    const hit = cacheHit(hashPart);
    if (hit !== undefined) return hit ?? undefined;
    const info = query(hashPart);
    if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
    cache.set(hashPart, info ?? null);
    return info;
  }

  return {
    storeDir,
    async lookup(hashPart) {
      if (!isHashPart(hashPart)) throw new Error(`invalid store path hash ${JSON.stringify(hashPart)}`);
      return patiently(() => lookupNow(hashPart));
    },
    lookupNow,
    async narState(info) {
      // One lstat on the event loop: a thread-pool round trip (two thread wake-ups and an event-loop turn) cost
      // far more than the call itself on every NAR request of a closure copy.
      try {
        lstatSync(join(root, info.storePath));
        return 'present';
      } catch {
        // Files gone while the row is still there: being garbage-collected (gone once the row is), or a broken store.
        return (await patiently(() => db.isValid(info.storePath))) ? 'broken' : 'gone';
      }
    },
    nar(info) {
      // storePath came from the DB and starts with storeDir + '/<hash>-'; join keeps it under root.
      return narStream(join(root, info.storePath), info.narSize);
    },
    narChunks(info, range) {
      return checkedNar(join(root, info.storePath), info.narSize, range);
    },
    async narBuffer(info) {
      const key = narKey(info);
      const kept = keptNar(key);
      if (kept) return kept;
      const nar = await narBuffer(join(root, info.storePath), info.narSize);
      keepNar(key, nar);
      return nar;
    },
    narBufferNow(info) {
      const kept = keptNar(narKey(info));
      if (kept) lstatSync(join(root, info.storePath)); // still there (as narState asks), else throws
      return kept;
    },
    listing(info) {
      return narListing(join(root, info.storePath));
    },
    buildLog(drvOrHash) {
      return findBuildLog(root, drvOrHash);
    },
    isValid(storePath) {
      return patiently(() => db.isValid(storePath));
    },
    refresh() {
      checkedAt = Number.NEGATIVE_INFINITY;
    },
    async realisation(id) {
      const parsed = parseRealisationId(id);
      if (!parsed) throw new Error('invalid realisation id');
      const row = await patiently(() => db.realisation(parsed.drvHash, parsed.outputName));
      if (!row) return undefined;
      return {
        id,
        outPath: storePathBaseName(row.outPath),
        signatures: row.signatures ? row.signatures.split(' ').filter(Boolean) : [],
        dependentRealisations: Object.fromEntries(row.dependents.map((d) => [d.id, storePathBaseName(d.outPath)])),
      };
    },
    close() {
      db.close();
    },
  };
}
