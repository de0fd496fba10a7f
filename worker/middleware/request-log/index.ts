/**
 * One JSON line per request: method, path, status, user, duration, bytes,
 * and — since 401s look like misses to Nix — why authentication failed;
 * for proxied requests, which origin answered, how many were asked and how
 * each did, in how many ms. Never a credential.
 */
import type { MiddlewareHandler } from 'hono';
import type { EdgeEnv } from '../../types.ts';
import type { Clock, Log } from '../../log.ts';

export function requestLog(options: { log: Log; now: Clock }): MiddlewareHandler<EdgeEnv> {
  const { log, now } = options;
  return async function requestLogMiddleware(c, next) {
    const started = now();
    await next();
    const length = c.res.headers.get('content-length');
    const entry: Record<string, unknown> = {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      user: c.get('user') ?? null,
      ms: now() - started,
      bytes: length ? Number(length) : null,
    };
    const failure = c.get('authFailure');
    if (failure) entry.auth = failure;
    const from = c.get('provenance');
    if (from) Object.assign(entry, from);
    log(entry);
  };
}
