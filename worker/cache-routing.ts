/**
 * Which cache a request addresses, at the edge: `/<name>/…` is cache `name`,
 * the bare paths are DEFAULT_CACHE's, and the global paths (`/`, `/v1/…`,
 * `/health`) belong to none. The edge forwards paths unchanged; the origin
 * reads them with the same shared/caches.ts.
 */
import { cacheOfPath, isGlobalPath } from '../shared/caches.ts';

/** A Hono route pattern for one cache-name segment (names are checked again by shared/caches.ts). */
export const CACHE_SEGMENT = '[a-z0-9][a-z0-9_-]*';

/** The cache a path belongs to; undefined for global paths. */
export function requestedCache(path: string, defaultCache: string): string | undefined {
  if (isGlobalPath(path)) return undefined;
  return cacheOfPath(path).cache ?? defaultCache;
}

/** NAR downloads get the longer budget, under a cache prefix too. */
export function isNarPath(path: string): boolean {
  return cacheOfPath(path).rest.startsWith('/nar/');
}
