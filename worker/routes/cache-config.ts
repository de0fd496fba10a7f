/**
 * `GET /v1/cache-config` at the edge: for each cache the token may use, the
 * substituter URL, public keys (every origin's) and priority (the data of
 * /v1/caches), plus the token's user and the nix.conf and netrc lines a
 * client pastes — what `eris client-config` prints. 503 + Retry-After when
 * an origin did not answer: lines missing a box's key must not be pasted.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from '../types.ts';
import type { GatherOptions } from '../origin-keys.ts';
import { grantedCaches } from './caches.ts';
import { renderNetrcLine, renderNixConf, type CacheConfig } from '../../shared/client-config.ts';

export function cacheConfig(o: GatherOptions) {
  return async function cacheConfigRoute(c: Context<EdgeEnv>): Promise<Response> {
    const list = await grantedCaches(c, o, 'cache configuration');
    if (list instanceof Response) return list;
    const { caches } = list;
    const host = new URL(c.req.url).hostname;
    const user = c.get('user') ?? '';
    const body: CacheConfig = { user, host, caches, nixConf: renderNixConf(caches), netrc: renderNetrcLine(host, user) };
    return c.json(body);
  };
}
