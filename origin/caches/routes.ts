/**
 * Cache selection for the per-cache routes, and `GET /v1/caches`. A request to
 * `/<name>/…` gets cache `name`'s deps and settings; a bare path the default
 * cache's. An unknown name, or a bare path without a default cache, is 404.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { OriginEnv } from '../server/types.ts';
import { notFound } from '../server/errors.ts';
import { send } from '../server/respond.ts';
import type { CacheContext, CacheRegistry } from './registry.ts';
import { CONTENT_TYPE } from '../../shared/contract.ts';
import type { CacheListing } from '../../shared/cache-listing.ts';

/** What `GET /v1/caches` answers (the edge filters it by token and adds `url`). */
export function cacheListing(registry: CacheRegistry): CacheListing {
  return { caches: registry.all.map((c) => ({ name: c.name, priority: c.priority, publicKeys: c.signers.map((s) => s.publicKey), default: c.isDefault })) };
}

export function cacheSelector(registry: CacheRegistry) {
  let ready = false;
  void registry.ready.then(() => (ready = true), () => {});
  const enter = async (c: Context<OriginEnv>, ctx: CacheContext | undefined, missing: string) => {
    if (!ctx) throw notFound(missing);
    if (!ready) await registry.ready;
    c.set('deps', ctx.deps);
    c.set('settings', ctx.settings);
    c.set('cache', ctx.name);
  };
  const bare: MiddlewareHandler<OriginEnv> = async (c, next) => {
    await enter(c, registry.default, 'no default cache here: use /<cache>/…');
    await next();
  };
  const named: MiddlewareHandler<OriginEnv> = async (c, next) => {
    await enter(c, registry.get(c.req.param('cache') ?? ''), 'no such cache');
    await next();
  };
  return { bare, named };
}

export function getCaches(registry: CacheRegistry) {
  const body = JSON.stringify(cacheListing(registry));
  return (c: Context<OriginEnv>) => send(c, 200, body, CONTENT_TYPE.json);
}
