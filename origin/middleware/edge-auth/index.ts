/**
 * Refuses any request that lacks the Worker's shared secret. The comparison is
 * constant-time (both sides hashed to equal length first).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { OriginEnv } from '../../types.ts';
import { send, TEXT } from '../../respond.ts';
import { EDGE_SECRET_HEADER } from '../../../shared/contract.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function edgeAuth(secret: string): MiddlewareHandler<OriginEnv> {
  if (!secret || secret.length < 16) throw new Error('edgeAuth: the edge secret must be at least 16 characters');
  const expected = digest(secret);
  return async function edgeAuthMiddleware(c, next) {
    const given = c.req.header(EDGE_SECRET_HEADER);
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      c.get('deps').log.warn({ msg: 'request without a valid edge secret', method: c.req.method, path: c.req.path, status: 403 });
      return send(c, 403, 'forbidden: requests must come through the eris edge\n', TEXT);
    }
    await next();
  };
}
