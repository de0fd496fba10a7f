/**
 * Forwards an authenticated request to the origin: never cached
 * (`cache: 'no-store'`), the client's credentials stripped, the edge secret
 * added, bodies streamed both ways. A down or slow origin becomes 502/504 —
 * never a 404, which Nix would remember as a miss.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from './types.ts';

export const EDGE_SECRET_HEADER = 'x-eris-edge-secret';

/** Request headers worth passing on; everything else (Authorization, Cookie, …) stays at the edge. */
const FORWARD_REQUEST_HEADERS = ['accept', 'range', 'if-range', 'user-agent', 'content-type', 'content-length'];
/** Response headers the edge passes back. */
const FORWARD_RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'retry-after', 'last-modified', 'etag'];

export type FetchOrigin = (request: Request) => Promise<Response>;

export interface ProxyOptions {
  originUrl: string;
  edgeSecret: string;
  fetchOrigin: FetchOrigin;
  /** Budget for the origin's response headers, by request kind. */
  timeoutFor: (path: string) => number;
}

function plain(status: number, message: string, extra: Record<string, string> = {}): Response {
  return new Response(message + '\n', { status, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...extra } });
}

export function createProxy(options: ProxyOptions) {
  return async function proxy(c: Context<EdgeEnv>): Promise<Response> {
    const url = new URL(c.req.url);
    const headers = new Headers();
    for (const name of FORWARD_REQUEST_HEADERS) {
      const v = c.req.header(name);
      if (v !== undefined) headers.set(name, v);
    }
    headers.set(EDGE_SECRET_HEADER, options.edgeSecret);
    const user = c.get('user');
    if (user) headers.set('x-eris-user', user);

    const method = c.req.method;
    const hasBody = method !== 'GET' && method !== 'HEAD';
    const controller = new AbortController();
    const budget = options.timeoutFor(url.pathname);
    const timer = setTimeout(() => controller.abort(new Error('origin timeout')), budget);
    let upstream: Response;
    try {
      upstream = await options.fetchOrigin(
        new Request(options.originUrl + url.pathname + url.search, {
          method,
          headers,
          body: hasBody ? c.req.raw.body : null,
          redirect: 'manual',
          signal: controller.signal,
          cache: 'no-store',
        }),
      );
    } catch (err) {
      if (controller.signal.aborted) {
        return plain(504, `origin did not answer within ${Math.round(budget / 1000)} s`);
      }
      console.error(JSON.stringify({ msg: 'origin unreachable', error: String(err) }));
      return plain(502, 'origin unreachable', { 'Retry-After': '5' });
    } finally {
      clearTimeout(timer);
    }

    if (upstream.status === 401 || upstream.status === 403) {
      // The origin refused the edge itself: a deployment fault, not the user's. Never a 403 that Nix treats as a miss.
      console.error(JSON.stringify({ msg: 'origin refused the edge secret; check EDGE_SECRET on both sides', status: upstream.status }));
      await upstream.body?.cancel();
      return plain(502, 'origin refused the edge');
    }
    const out = new Headers();
    for (const name of FORWARD_RESPONSE_HEADERS) {
      const v = upstream.headers.get(name);
      if (v !== null) out.set(name, v);
    }
    return new Response(method === 'HEAD' ? null : upstream.body, { status: upstream.status, headers: out });
  };
}
