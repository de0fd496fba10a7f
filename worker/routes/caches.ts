/**
 * `GET /v1/caches` at the edge: the origin's list (name, priority, public keys,
 * default), cut down to the caches the request's token may use, each with the
 * substituter URL to put into nix.conf (`https://<edge>/<name>`).
 */
import type { Context } from 'hono';
import type { EdgeEnv } from '../types.ts';
import type { OriginSender } from '../origin-client.ts';
import type { Log } from '../log.ts';
import { failureResponse } from '../proxy.ts';

export interface CacheEntry {
  name: string;
  priority: number;
  publicKeys: string[];
  default: boolean;
}

/** The origin's `/v1/caches` answer, checked; null when it is not one. */
export function parseCacheListing(text: string): CacheEntry[] | null {
  try {
    const o = JSON.parse(text) as { caches?: unknown };
    if (!Array.isArray(o.caches)) return null;
    return o.caches.filter((c): c is CacheEntry => typeof c === 'object' && c !== null && typeof c.name === 'string' &&
      typeof c.priority === 'number' && Array.isArray(c.publicKeys) && typeof c.default === 'boolean');
  } catch {
    return null;
  }
}

/** The origin's caches, or a Response to send instead (origin down, or a bad answer). */
export async function fetchCaches(o: { origin: OriginSender; timeoutMs: number; log: Log }, bypassBreaker = false): Promise<CacheEntry[] | Response> {
  const result = await o.origin.send({ path: '/v1/caches', timeoutMs: o.timeoutMs, bypassBreaker });
  if (result.kind !== 'answer') return failureResponse(result);
  const res = result.response;
  const text = await res.text();
  const list = res.status === 200 ? parseCacheListing(text) : null;
  if (!list) {
    o.log({ msg: 'origin gave no usable cache list', status: res.status });
    return new Response('origin gave no usable cache list\n', { status: 502, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
  }
  return list;
}

export function cacheList(o: { origin: OriginSender; timeoutMs: number; log: Log }) {
  return async function caches(c: Context<EdgeEnv>): Promise<Response> {
    const list = await fetchCaches(o);
    if (list instanceof Response) return list;
    const granted = new Set(c.get('caches') ?? []);
    const base = new URL(c.req.url).origin;
    const visible = list.filter((x) => granted.has(x.name)).map((x) => ({ ...x, url: `${base}/${x.name}` }));
    return c.json({ caches: visible });
  };
}
