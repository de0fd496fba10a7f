/** Every origin response says `Cache-Control: private, no-store`: nothing between here and Nix may cache it. */
import type { MiddlewareHandler } from 'hono';

export const NO_STORE = 'private, no-store';

export function noStore(): MiddlewareHandler {
  return async function noStoreMiddleware(c, next) {
    await next();
    c.res.headers.set('Cache-Control', NO_STORE);
  };
}
