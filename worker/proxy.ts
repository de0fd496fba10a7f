/**
 * Forwards an authenticated request to the origin: never cached
 * (`cache: 'no-store'`), the client's credentials stripped, the edge secret
 * added, bodies streamed both ways. A down or slow origin becomes 502/504 —
 * never a 404, which Nix would remember as a miss — and after a few of those
 * in a row the circuit breaker answers 503 + Retry-After at once for a
 * cool-down instead of letting every request wait out its budget.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from './types.ts';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.ts';
import { EDGE_SECRET_HEADER, USER_HEADER } from '../shared/contract.ts';

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
  /** Circuit breaker settings; by default 5 failures open it for 5 s. */
  breaker?: { threshold: number; cooldownMs: number };
  /** Clock for the breaker (tests). */
  now?: () => number;
}

/**
 * Statuses that mean something between the edge and the origin could not
 * reach it: cloudflared answers 502 when the origin's port is closed,
 * Cloudflare 530 (error 1033) when the tunnel is down, 52x for other origin
 * failures. Our origin never sends these itself.
 */
const GATEWAY_FAILURES = new Set([502, 504, 520, 521, 522, 523, 524, 525, 526, 527, 530]);

function plain(status: number, message: string, extra: Record<string, string> = {}): Response {
  return new Response(message + '\n', { status, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...extra } });
}

export function createProxy(options: ProxyOptions) {
  const breaker = new CircuitBreaker({
    threshold: options.breaker?.threshold ?? 5,
    cooldownMs: options.breaker?.cooldownMs ?? 5000,
    // A trial is over when its budget is: the longest budget plus a margin.
    trialTimeoutMs: Math.max(options.timeoutFor('/nar/'), options.timeoutFor('/')) + 1000,
    now: options.now,
    onChange: (from: BreakerState, to: BreakerState, failures: number) =>
      console.error(JSON.stringify({ msg: 'origin circuit breaker', from, to, failures })),
  });

  return async function proxy(c: Context<EdgeEnv>): Promise<Response> {
    const res = await forward(c);
    // Nix resumes a NAR cut mid-body with a Range request only while every
    // answer, the failed retries included, says `Accept-Ranges: bytes`; without
    // it, one 502 during an origin restart ends the download. (A resumed
    // request the origin cannot serve as a range still fails cleanly: curl
    // refuses a 200 to a range request.)
    if (res.status >= 500 && c.req.path.startsWith('/nar/') && !res.headers.has('accept-ranges')) {
      res.headers.set('Accept-Ranges', 'bytes');
    }
    return res;
  };

  async function forward(c: Context<EdgeEnv>): Promise<Response> {
    const admission = breaker.admit();
    if (!admission.ok) {
      const seconds = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
      return plain(503, `origin unavailable, retry in ${seconds} s`, { 'Retry-After': String(seconds) });
    }
    const { permit } = admission;
    const url = new URL(c.req.url);
    const headers = new Headers();
    for (const name of FORWARD_REQUEST_HEADERS) {
      const v = c.req.header(name);
      if (v !== undefined) headers.set(name, v);
    }
    headers.set(EDGE_SECRET_HEADER, options.edgeSecret);
    const user = c.get('user');
    if (user) headers.set(USER_HEADER, user);

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
      permit.failure();
      if (controller.signal.aborted) {
        return plain(504, `origin did not answer within ${Math.round(budget / 100) / 10} s`, { 'Retry-After': '5' });
      }
      console.error(JSON.stringify({ msg: 'origin unreachable', error: String(err) }));
      return plain(502, 'origin unreachable', { 'Retry-After': '5' });
    } finally {
      clearTimeout(timer);
    }

    if (GATEWAY_FAILURES.has(upstream.status)) {
      // Reported by a gateway in between (tunnel): the origin itself did not answer. Its body is the gateway's page.
      permit.failure();
      console.error(JSON.stringify({ msg: 'gateway could not reach the origin', status: upstream.status }));
      await upstream.body?.cancel();
      const timeout = upstream.status === 504 || upstream.status === 524;
      return plain(timeout ? 504 : 502, timeout ? 'origin timed out behind the tunnel' : 'origin unreachable behind the tunnel', { 'Retry-After': '5' });
    }
    permit.success();

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
  }
}
