/**
 * `GET /v1/caches`: the caches an origin serves, or — at the edge — the ones a
 * token may use, merged from every origin. One shape for both, read with one
 * parser by the edge (each origin's answer), `eris doctor` (the origin's and
 * the edge's) and the client configuration (GET /v1/cache-config's caches).
 */

/** One cache as `/v1/caches` lists it. */
export interface CacheEntry {
  name: string;
  /** nix-cache-info's Priority. */
  priority: number;
  publicKeys: string[];
  /** Served at the bare root too. */
  default: boolean;
}

/** Two or more origins say different things about one cache (the edge lists these; `eris doctor` flags them). */
export interface CacheDisagreement {
  cache: string;
  field: 'priority' | 'default';
  /** What each origin that lists the cache says, by origin id. */
  values: Record<string, number | boolean>;
}

/**
 * The body of `GET /v1/caches`. The origin answers `{ caches }`; the edge gives
 * each cache its substituter URL and adds `disagreements` when there are some.
 */
export interface CacheListing<E extends CacheEntry = CacheEntry> {
  caches: E[];
  disagreements?: CacheDisagreement[];
}

/** Whether `c` has a cache entry's fields, each of its type. */
export function isCacheEntry(c: unknown): c is CacheEntry {
  if (typeof c !== 'object' || c === null) return false;
  const e = c as Record<string, unknown>;
  return typeof e.name === 'string' && typeof e.priority === 'number' && typeof e.default === 'boolean' &&
    Array.isArray(e.publicKeys) && e.publicKeys.every((k) => typeof k === 'string');
}

/** A `/v1/caches` body, checked; throws when it is not one. Entries that are not caches are left out. */
export function parseCacheListing(text: string): CacheListing {
  const o = JSON.parse(text) as { caches?: unknown; disagreements?: unknown };
  if (!Array.isArray(o.caches)) throw new Error('no "caches" array');
  const listing: CacheListing = { caches: o.caches.filter(isCacheEntry) };
  if (Array.isArray(o.disagreements)) listing.disagreements = o.disagreements as CacheDisagreement[];
  return listing;
}
