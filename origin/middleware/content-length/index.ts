/**
 * Gives small generated responses (narinfo, nix-cache-info, errors) an explicit
 * Content-Length, so a HEAD answers with the same headers as the GET.
 * NAR streams set their own and are never buffered here.
 */
import type { MiddlewareHandler } from 'hono';

export function contentLength(): MiddlewareHandler {
  return async function contentLengthMiddleware(c, next) {
    await next();
    const res = c.res;
    if (res.body === null || res.headers.has('content-length') || res.headers.get('content-type') === 'application/x-nix-nar') return;
    const body = await res.arrayBuffer();
    const headers = new Headers(res.headers);
    headers.set('content-length', String(body.byteLength));
    c.res = undefined as unknown as Response; // replace rather than merge headers
    c.res = new Response(body, { status: res.status, headers });
  };
}
