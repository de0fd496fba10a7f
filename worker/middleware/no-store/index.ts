/** Every edge response — errors included — says `Cache-Control: private, no-store`. */
import type { MiddlewareHandler } from 'hono';
import type { EdgeEnv } from '../../types.ts';
import { NO_STORE } from '../../../shared/contract.ts';

export function noStore(): MiddlewareHandler<EdgeEnv> {
  return async function noStoreMiddleware(c, next) {
    await next();
    // Already right (the proxy marks what it passes on): no second Response per request.
    if (c.res.headers.get('Cache-Control') === NO_STORE && !c.res.headers.has('Set-Cookie')) return;
    // Responses from fetch() have immutable headers: rebuild around the same body stream.
    const res = new Response(c.res.body, c.res);
    res.headers.set('Cache-Control', NO_STORE);
    res.headers.delete('Set-Cookie');
    c.res = undefined as unknown as Response;
    c.res = res;
  };
}
