/**
 * `eris push` at the edge (shared/push-protocol.ts): `/<cache>/v1/push/…`.
 * The auth middleware has already checked the token's grant on the cache and
 * the scope (write, except the missing question, which a reader may ask),
 * and uploadLimit the Content-Length, all before a byte of the body is read.
 * Everything is streamed to the first origin, as stock uploads are (a batch of
 * small paths, POST …/v1/push/batch, is one more write route here: bounded by
 * the same limit, forwarded with its Content-Length); the missing answer also
 * tells the client the largest part, or batch, this edge forwards.
 */
import type { Context, Handler } from 'hono';
import { MAX_UPLOAD_HEADER, MISSING_PATH } from '../../shared/push-protocol.ts';
import { cacheOfPath } from '../../shared/caches.ts';
import type { EdgeEnv } from '../types.ts';

/** Route patterns under a cache segment. */
export const PUSH_ROUTES = { post: '/v1/push/*', get: '/v1/push/uploads/*', put: '/v1/push/uploads/*' } as const;

export function pushProtocol(proxy: (c: Context<EdgeEnv>) => Promise<Response>, maxUploadBytes: number): Handler<EdgeEnv> {
  return async (c) => {
    const res = await proxy(c);
    if (cacheOfPath(c.req.path).rest === MISSING_PATH && res.ok) res.headers.set(MAX_UPLOAD_HEADER, String(maxUploadBytes));
    return res;
  };
}
