/**
 * Named caches: one origin serves several, each under its own URL prefix
 * (`/<name>/nix-cache-info`, `/<name>/<hash>.narinfo`, `/<name>/nar/…`); the bare
 * paths are the default cache. Both the origin and the edge read paths with
 * these functions, so they agree on which cache a URL names.
 */

export const CACHE_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The cache a config without `[[cache]]` tables serves, and the bare root's cache unless configured otherwise. */
export const DEFAULT_CACHE_NAME = 'default';

/** First path segments that are never cache names: the bare (default-cache) URLs and the global endpoints. */
export const RESERVED_CACHE_NAMES: ReadonlySet<string> = new Set(['nar', 'log', 'realisations', 'v1', 'health', 'metrics', 'nix-cache-info']);

/** Why `name` cannot name a cache, or undefined when it can. */
export function cacheNameProblem(name: string): string | undefined {
  if (!CACHE_NAME_RE.test(name)) return 'expected 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit';
  if (RESERVED_CACHE_NAMES.has(name)) return `"${name}" is reserved (${[...RESERVED_CACHE_NAMES].join(', ')})`;
  return undefined;
}

export const isCacheName = (name: string): boolean => cacheNameProblem(name) === undefined;

/** Paths that belong to no cache: the public key, version, health, cache list, metrics, the bare landing page. */
export function isGlobalPath(path: string): boolean {
  return path === '/' || path === '/health' || path === '/metrics' || path.startsWith('/v1/');
}

export interface CachePath {
  /** The cache the URL names; undefined for the bare (default-cache) paths. */
  cache: string | undefined;
  /** The path within the cache: `/nix-cache-info`, `/<hash>.narinfo`, `/nar/…`, or `/` for the cache's landing page. */
  rest: string;
}

/**
 * Which cache a request path addresses. `/nar/x.nar` → default cache; `/team-a/nar/x.nar` → team-a;
 * `/team-a` and `/team-a/` → team-a's landing page. Global paths (isGlobalPath) and a first segment that
 * cannot be a cache name (e.g. `/<hash>.narinfo`) are the default cache's / global.
 */
export function cacheOfPath(path: string): CachePath {
  const slash = path.indexOf('/', 1);
  const first = slash < 0 ? path.slice(1) : path.slice(1, slash);
  if (!isCacheName(first)) return { cache: undefined, rest: path };
  return { cache: first, rest: slash < 0 ? '/' : path.slice(slash) };
}
