/**
 * A bounded on-disk cache of compressed NARs, so narinfo can advertise exact
 * FileHash/FileSize and repeated downloads skip compression.
 *
 * Layout: `<dir>/<key>` (data) + `<dir>/<key>.json` ({fileHash, fileSize});
 * writes go to `<dir>/tmp/` and are renamed into place (meta first, data last)
 * only when complete, so a crash never leaves a partial file that is served.
 * Entries are evicted least-recently-used once the total exceeds maxBytes.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { URL_SUFFIX, type Compression } from './compress.ts';
import { processAlive } from '../server/process-alive.ts';

/** The cache key of a path's NAR compressed with `method`: `<nar hash nix32><URL suffix>`; `narHash` is `sha256:<nix32>`. */
export function narCacheKey(narHash: string, method: Exclude<Compression, 'none'>): string {
  if (!narHash.startsWith('sha256:')) throw new Error(`not a sha256 NAR hash: ${narHash}`);
  return narHash.slice('sha256:'.length) + URL_SUFFIX[method];
}

export interface CacheEntry {
  path: string;
  /** `sha256:<nix32>` of the compressed file. */
  fileHash: string;
  fileSize: number;
}

export interface NarCache {
  get(key: string): CacheEntry | undefined;
  /** Where to write a new entry for `key` (in this process's tmp dir); it is served only after commit. */
  spoolPath(key: string): string;
  /** Makes the complete file at `tmpPath` (from spoolPath) the entry for `key`; throws if it cannot. */
  commit(key: string, tmpPath: string, fileHash: string, fileSize: number): CacheEntry;
  readonly totalBytes: number;
}

const KEY_RE = /^[0-9a-z]{52}\.nar\.(zstd|xz)$/;

const alive = processAlive;

export function createNarCache(dir: string, maxBytes: number, onEvict?: (key: string) => void): NarCache {
  // Each process writes under tmp/<pid> (several origin workers may share the cache). Leftovers of a
  // crashed or stopped process, and loose files from older layouts, are removed and never served.
  const tmpRoot = join(dir, 'tmp');
  mkdirSync(tmpRoot, { recursive: true });
  for (const f of readdirSync(tmpRoot)) {
    if (!/^\d+$/.test(f) || Number(f) === process.pid || !alive(Number(f))) rmSync(join(tmpRoot, f), { recursive: true, force: true });
  }
  const tmp = join(tmpRoot, String(process.pid));
  mkdirSync(tmp, { recursive: true });
  const index = new Map<string, CacheEntry>(); // insertion order = least recently used first
  let total = 0;

  const drop = (key: string) => {
    for (const f of [join(dir, key), join(dir, key + '.json')]) if (existsSync(f)) unlinkSync(f);
  };

  // Rebuild the index; anything incomplete or inconsistent is removed.
  const found = readdirSync(dir).filter((f) => KEY_RE.test(f));
  const withTime = found.map((key) => {
    try {
      const meta = JSON.parse(readFileSync(join(dir, key + '.json'), 'utf8')) as { fileHash: string; fileSize: number };
      const st = statSync(join(dir, key));
      if (st.size !== meta.fileSize || typeof meta.fileHash !== 'string') throw new Error('size mismatch');
      return { key, entry: { path: join(dir, key), fileHash: meta.fileHash, fileSize: meta.fileSize }, t: st.atimeMs };
    } catch {
      drop(key);
      return undefined;
    }
  });
  for (const e of withTime.filter((x) => x !== undefined).sort((a, b) => a.t - b.t)) {
    index.set(e.key, e.entry);
    total += e.entry.fileSize;
  }
  for (const f of readdirSync(dir)) if (f.endsWith('.json') && !index.has(f.slice(0, -5))) unlinkSync(join(dir, f));

  const evict = () => {
    for (const [key, e] of index) {
      if (total <= maxBytes) break;
      index.delete(key);
      total -= e.fileSize;
      drop(key);
      onEvict?.(key);
    }
  };
  evict();

  return {
    get totalBytes() {
      return total;
    },
    get(key) {
      let e = index.get(key);
      if (!e) {
        // Another worker may have written it.
        if (!KEY_RE.test(key) || !existsSync(join(dir, key))) return undefined;
        try {
          const meta = JSON.parse(readFileSync(join(dir, key + '.json'), 'utf8')) as { fileHash: string; fileSize: number };
          if (statSync(join(dir, key)).size !== meta.fileSize) return undefined;
          e = { path: join(dir, key), fileHash: meta.fileHash, fileSize: meta.fileSize };
          index.set(key, e);
          total += e.fileSize;
          evict();
          return index.get(key);
        } catch {
          return undefined;
        }
      }
      if (!existsSync(e.path)) {
        index.delete(key);
        total -= e.fileSize;
        return undefined;
      }
      index.delete(key);
      index.set(key, e); // most recently used
      return e;
    },
    spoolPath(key) {
      if (!KEY_RE.test(key)) throw new Error(`bad cache key ${key}`);
      return join(tmp, `${key}.${randomBytes(6).toString('hex')}`);
    },
    commit(key, tmpPath, fileHash, fileSize) {
      // Meta first, data last: an entry is served only once its data file is in place.
      const fd = openSync(tmpPath, 'r');
      fsyncSync(fd);
      closeSync(fd);
      const entry: CacheEntry = { path: join(dir, key), fileHash, fileSize };
      const metaTmp = tmpPath + '.json';
      writeFileSync(metaTmp, JSON.stringify({ fileHash, fileSize }));
      renameSync(metaTmp, join(dir, key + '.json'));
      renameSync(tmpPath, entry.path);
      const old = index.get(key);
      if (old) total -= old.fileSize;
      index.delete(key);
      index.set(key, entry);
      total += fileSize;
      evict();
      return entry;
    },
  };
}
