/**
 * Counts narinfo lookups (hit: 200, miss: 404) per user and cache once the
 * answer is made. NAR bytes are counted where NARs are sent (nar-transport.ts).
 * A few property reads per request; the writing happens elsewhere, batched.
 */
import type { MiddlewareHandler } from 'hono';
import type { OriginEnv } from '../../types.ts';
import { requestCache, requestToken, requestUser } from '../../../usage/request.ts';

export function usageCounter(): MiddlewareHandler<OriginEnv> {
  return async function usageCounterMiddleware(c, next) {
    await next();
    const usage = c.get('deps').usage;
    if (!usage || !c.req.path.endsWith('.narinfo')) return;
    const status = c.res.status;
    if ((status === 200 || status === 404) && (c.req.method === 'GET' || c.req.method === 'HEAD')) usage.narinfo(requestUser(c), requestCache(c), status === 200, requestToken(c));
  };
}
