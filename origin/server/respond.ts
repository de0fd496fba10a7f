/**
 * Small generated responses (narinfo, nix-cache-info, errors): explicit
 * Content-Length, so a HEAD answers with the same headers as the GET, and
 * `Cache-Control: private, no-store` — set here rather than by a middleware so
 * @hono/node-server keeps its fast path (plain header objects).
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { OriginDeps } from './types.ts';
import { NO_STORE, CONTENT_TYPE } from '../../shared/contract.ts';

export { NO_STORE };
export const TEXT = CONTENT_TYPE.text;

export function send(c: Context, status: ContentfulStatusCode, body: string | Uint8Array<ArrayBuffer>, contentType: string, extra?: Record<string, string>): Response {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  const metrics = (c.get('deps') as OriginDeps | undefined)?.metrics;
  if (metrics) {
    metrics.request(c.req.routePath, status, c.req.method);
    if (c.req.method !== 'HEAD') metrics.sent(c.req.routePath, length, c.req.method);
  }
  return c.body(body, status, {
    'Content-Type': contentType,
    'Content-Length': String(length),
    'Cache-Control': NO_STORE,
    ...extra,
  });
}

/**
 * The headers send() gives a body of `length` bytes, as the flat `[name, value, …]` array Node's
 * `res.writeHead` takes as is: for the answers made below Hono (routes/narinfo-fast.ts), rendered once.
 */
export function sentHeaders(contentType: string, length: number): string[] {
  return ['Content-Type', contentType, 'Content-Length', String(length), 'Cache-Control', NO_STORE];
}
