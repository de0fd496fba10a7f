/**
 * Uploads (`PUT`, what `nix copy --to https://…` sends) at the edge: the
 * request must say its size (Nix always sends Content-Length), and a body over
 * MAX_UPLOAD_BYTES is refused with 413 before a byte of it is read — the same
 * answer Cloudflare itself gives past its plan limit (100 MB per request on
 * Free and Pro), but with one line that names the way out (`eris push`, which
 * sends parts under the limit). `eris push`'s POSTs are bounded the same way. Runs after auth, so
 * only a writer learns the limit. The body itself is streamed on by the proxy.
 */
import type { MiddlewareHandler } from 'hono';
import type { EdgeEnv } from '../../types.ts';
import { requestedCache } from '../../cache-routing.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

/** Cloudflare's request body limit on the Free and Pro plans. */
export const DEFAULT_MAX_UPLOAD_BYTES = 100_000_000;

export function tooLargeMessage(length: number, max: number, cache: string): string {
  return `upload of ${length} bytes is over this cache's limit of ${max} bytes per request (MAX_UPLOAD_BYTES; Cloudflare Free/Pro allow 100 MB): ` +
    `push it with eris push --cache ${cache} PATH, which uploads any size in parts (or nix copy --to ssh://<box> PATH, then eris publish PATH --cache ${cache} on the box)\n`;
}

export function uploadLimit(maxBytes: number, defaultCache: string): MiddlewareHandler<EdgeEnv> {
  return async function uploadLimitMiddleware(c, next) {
    const header = c.req.header('content-length');
    const text = { 'Content-Type': CONTENT_TYPE.text };
    if (header === undefined || !/^\d+$/.test(header)) {
      return new Response('uploads need a Content-Length\n', { status: 411, headers: text });
    }
    const length = Number(header);
    if (length > maxBytes) return new Response(tooLargeMessage(length, maxBytes, requestedCache(c.req.path, defaultCache) ?? defaultCache), { status: 413, headers: { ...text, Connection: 'close' } });
    await next();
  };
}
