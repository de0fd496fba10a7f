/**
 * `GET /v1/cache-config` at the edge: for each cache the token may use, the
 * substituter URL, public keys and priority (the data of /v1/caches), plus the
 * token's user and the nix.conf and netrc lines a client pastes — what
 * `eris client-config` prints.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from '../types.ts';
import type { OriginSender } from '../origin-client.ts';
import type { Log } from '../log.ts';
import { fetchCaches } from './caches.ts';
import { renderNetrcLine, renderNixConf, type CacheConfig } from '../../shared/client-config.ts';

export function cacheConfig(o: { origin: OriginSender; timeoutMs: number; log: Log }) {
  return async function cacheConfigRoute(c: Context<EdgeEnv>): Promise<Response> {
    const list = await fetchCaches(o);
    if (list instanceof Response) return list;
    const granted = new Set(c.get('caches') ?? []);
    const url = new URL(c.req.url);
    const caches = list.filter((x) => granted.has(x.name)).map((x) => ({ ...x, url: `${url.origin}/${x.name}` }));
    const user = c.get('user') ?? '';
    const body: CacheConfig = { user, host: url.hostname, caches, nixConf: renderNixConf(caches), netrc: renderNetrcLine(url.hostname, user) };
    return c.json(body);
  };
}
