/**
 * Forwards an authenticated request to the origin through the origin client
 * (which adds the edge secret and the user, never caches, and keeps the
 * circuit breaker), passing on only the headers worth passing, bodies
 * streamed both ways. A down or slow origin becomes 502/504 — never a 404,
 * which Nix would remember as a miss — and while the breaker is open, 503 +
 * Retry-After at once instead of every request waiting out its budget.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from './types.ts';
import type { OriginClient, OriginResult } from './origin-client.ts';

/** Request headers worth passing on; everything else (Authorization, Cookie, …) stays at the edge. */
const FORWARD_REQUEST_HEADERS = ['accept', 'range', 'if-range', 'user-agent', 'content-type', 'content-length'];
/** Response headers the edge passes back. */
const FORWARD_RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'retry-after', 'last-modified', 'etag'];

export interface ProxyOptions {
  origin: OriginClient;
  /** Budget for the origin's response headers, by request path. */
  timeoutFor: (path: string) => number;
}

function plain(status: number, message: string, extra: Record<string, string> = {}): Response {
  return new Response(message + '\n', { status, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...extra } });
}

/** What the client sees when the origin gave no usable answer. */
export function failureResponse(result: Exclude<OriginResult, { kind: 'answer' }>): Response {
  switch (result.kind) {
    case 'open': {
      const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
      return plain(503, `origin unavailable, retry in ${seconds} s`, { 'Retry-After': String(seconds) });
    }
    case 'timeout':
      return plain(504, `origin did not answer within ${Math.round(result.budgetMs / 100) / 10} s`, { 'Retry-After': '5' });
    case 'unreachable':
      return plain(502, 'origin unreachable', { 'Retry-After': '5' });
    case 'gateway': {
      const timeout = result.status === 504 || result.status === 524;
      return plain(timeout ? 504 : 502, timeout ? 'origin timed out behind the tunnel' : 'origin unreachable behind the tunnel', { 'Retry-After': '5' });
    }
    case 'refused':
      // The origin refused the edge itself: a deployment fault, not the user's. Never a 403 that Nix treats as a miss.
      return plain(502, 'origin refused the edge');
  }
}

/** The client's request headers the origin may see. */
export function forwardedRequestHeaders(c: Context<EdgeEnv>): Headers {
  const headers = new Headers();
  for (const name of FORWARD_REQUEST_HEADERS) {
    const v = c.req.header(name);
    if (v !== undefined) headers.set(name, v);
  }
  return headers;
}

/** The origin's answer as the edge passes it on: selected headers, the body streamed (none for HEAD). */
export function passOn(method: string, upstream: Response): Response {
  const out = new Headers();
  for (const name of FORWARD_RESPONSE_HEADERS) {
    const v = upstream.headers.get(name);
    if (v !== null) out.set(name, v);
  }
  if (method === 'HEAD') void upstream.body?.cancel().catch(() => {});
  return new Response(method === 'HEAD' ? null : upstream.body, { status: upstream.status, headers: out });
}

/**
 * Nix resumes a NAR cut mid-body with a Range request only while every
 * answer, the failed retries included, says `Accept-Ranges: bytes`; without
 * it, one 502 during an origin restart ends the download. (A resumed request
 * the origin cannot serve as a range still fails cleanly: curl refuses a 200
 * to a range request.)
 */
export function keepRangesOnFailure(path: string, res: Response): Response {
  if (res.status >= 500 && path.startsWith('/nar/') && !res.headers.has('accept-ranges')) res.headers.set('Accept-Ranges', 'bytes');
  return res;
}

export function createProxy(options: ProxyOptions) {
  return async function proxy(c: Context<EdgeEnv>): Promise<Response> {
    const url = new URL(c.req.url);
    const result = await options.origin.send({
      method: c.req.method,
      path: url.pathname + url.search,
      headers: forwardedRequestHeaders(c),
      body: c.req.raw.body,
      user: c.get('user'),
      timeoutMs: options.timeoutFor(url.pathname),
    });
    const res = result.kind === 'answer' ? passOn(c.req.method, result.response) : failureResponse(result);
    return keepRangesOnFailure(url.pathname, res);
  };
}
