/**
 * `GET /v1/caches` at the edge: every origin's cache list merged
 * (origin-keys.ts: name, priority and default from the priority origin, the
 * union of every origin's keys), cut down to the caches the request's token
 * may use, each with the substituter URL to put into nix.conf
 * (`https://<edge>/<name>`), and where origins disagree on a cache's priority
 * or default flag, `disagreements` naming them (`eris doctor --edge-url` flags them).
 * When an origin did not answer: 503 + Retry-After (origin-keys.ts's rule).
 */
import type { Context } from 'hono';
import type { EdgeEnv } from '../types.ts';
import type { ClientCache } from '../../shared/client-config.ts';
import { gatherCaches, incompleteResponse, type CacheDisagreement, type CacheEntry, type GatherOptions } from '../origin-keys.ts';

export type { CacheEntry };

/** The caches the request's token may use, merged from every origin, with their URLs; a Response to send instead when an origin did not answer. */
export async function grantedCaches(c: Context<EdgeEnv>, o: GatherOptions, what: string): Promise<{ caches: ClientCache[]; disagreements: CacheDisagreement[] } | Response> {
  const { caches, disagreements, missing } = await gatherCaches(o);
  if (missing.length) return incompleteResponse(what, missing);
  const granted = new Set(c.get('caches') ?? []);
  const base = new URL(c.req.url).origin;
  return {
    caches: caches.filter((x) => granted.has(x.name)).map((x) => ({ ...x, url: `${base}/${x.name}` })),
    disagreements: disagreements.filter((d) => granted.has(d.cache)),
  };
}

export function cacheList(o: GatherOptions) {
  return async function caches(c: Context<EdgeEnv>): Promise<Response> {
    const list = await grantedCaches(c, o, 'cache list');
    if (list instanceof Response) return list;
    // `disagreements` only when there are some: one origin, or origins that agree, answer as one origin does.
    return c.json(list.disagreements.length ? list : { caches: list.caches });
  };
}
