/**
 * Refuses any request that lacks the Worker's shared secret. The comparison
 * takes the same time whatever the characters (only the length, which is not
 * secret, decides early); it runs on every request, so it allocates nothing.
 */
import type { MiddlewareHandler } from 'hono';
import type { OriginEnv } from '../../types.ts';
import { send, TEXT } from '../../respond.ts';
import { EDGE_SECRET_HEADER, EDGE_SECRET_MIN_LENGTH } from '../../../../shared/contract.ts';

/** Constant-time equality of two strings of the same length; false for different lengths. */
export function sameSecret(given: string, expected: string): boolean {
  if (given.length !== expected.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  return diff === 0;
}

export function edgeAuth(secret: string): MiddlewareHandler<OriginEnv> {
  if (!secret || secret.length < EDGE_SECRET_MIN_LENGTH) throw new Error(`edgeAuth: the edge secret must be at least ${EDGE_SECRET_MIN_LENGTH} characters`);
  return async function edgeAuthMiddleware(c, next) {
    // Node's own parsed headers when served over HTTP: asking the Request for one header would build a
    // whole fetch Headers object on every request. (Under app.request() in tests there is no incoming.)
    const incoming = c.env?.incoming;
    const raw = incoming ? incoming.headers[EDGE_SECRET_HEADER] : c.req.header(EDGE_SECRET_HEADER);
    const given = Array.isArray(raw) ? raw.join(', ') : raw;
    if (given === undefined || !sameSecret(given, secret)) {
      c.get('deps').log.warn({ msg: 'request without a valid edge secret', method: c.req.method, path: c.req.path, status: 403 });
      return send(c, 403, 'forbidden: requests must come through the eris edge\n', TEXT);
    }
    await next();
  };
}
