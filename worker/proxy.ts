/**
 * Forwards an authenticated request to the origins through their origin
 * clients (which add the edge secret and the user, never cache, and keep a
 * circuit breaker each), passing on only the headers worth passing, bodies
 * streamed both ways; which origin is asked is origins.ts's business. A
 * down or slow origin becomes 502/504 — never a 404, which Nix would
 * remember as a miss — and while its breaker is open, 503 + Retry-After at
 * once instead of every request waiting out its budget. The URL path is
 * forwarded unchanged; the query too, less the edge's own NAR_ORIGIN_PARAM.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from './types.ts';
import type { OriginClient, OriginResult } from './origin-client.ts';
import { askInTurn, chooseWithoutWinner, inOrder, NAR_ORIGIN_PARAM, provenance, routeNarUrl, type Attempt } from './origins.ts';
import { isNarPath } from './cache-routing.ts';
import { NO_STORE, CONTENT_TYPE } from '../shared/contract.ts';

/** Request headers worth passing on; everything else (Authorization, Cookie, …) stays at the edge. */
const FORWARD_REQUEST_HEADERS = ['accept', 'range', 'if-range', 'user-agent', 'content-type', 'content-length'];
/** Response headers the edge passes back. */
const FORWARD_RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'retry-after', 'last-modified', 'etag'];

export interface ProxyOptions {
  /** In priority order; at least one. */
  origins: OriginClient[];
  /** Budget for each origin's response headers, by request path. */
  timeoutFor: (path: string) => number;
  /** With several origins: how long a metadata request waits on one before also asking the next (0: only after it failed). */
  hedgeMs: number;
}

function plain(status: number, message: string, extra: Record<string, string> = {}): Response {
  return new Response(message + '\n', { status, headers: { 'Content-Type': CONTENT_TYPE.text, ...extra } });
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
  // Marked no-store here, while the headers are still ours to set, so noStore() need not rebuild it.
  const out = new Headers({ 'Cache-Control': NO_STORE });
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
  if (res.status >= 500 && isNarPath(path) && !res.headers.has('accept-ranges')) res.headers.set('Accept-Ranges', 'bytes');
  return res;
}

/** Several origins failed (and none had the path): 503, retry soon; at once when every breaker is open. */
function noOriginAnswered(failed: Attempt[]): Response {
  const open = failed.filter((a) => a.result.kind === 'open');
  if (open.length === failed.length) {
    const ms = Math.min(...open.map((a) => (a.result.kind === 'open' ? a.result.retryAfterMs : 5000)));
    const seconds = Math.max(1, Math.ceil(ms / 1000));
    return plain(503, `origins unavailable, retry in ${seconds} s`, { 'Retry-After': String(seconds) });
  }
  return plain(503, `no origin could answer (${failed.map((a) => `${a.origin.id}: ${outcome(a.result)}`).join(', ')})`, { 'Retry-After': '5' });
}

const outcome = (r: OriginResult) => (r.kind === 'answer' ? String(r.response.status) : r.kind);

export function createProxy(options: ProxyOptions) {
  const several = options.origins.length > 1;

  return async function proxy(c: Context<EdgeEnv>): Promise<Response> {
    const url = new URL(c.req.url);
    const path = url.pathname;
    const preferred = url.searchParams.get(NAR_ORIGIN_PARAM);
    if (preferred !== null) url.searchParams.delete(NAR_ORIGIN_PARAM);
    const method = c.req.method;
    const reads = method === 'GET' || method === 'HEAD';
    const nar = isNarPath(path);
    const headers = forwardedRequestHeaders(c);
    // The contract: USER_HEADER names an authenticated user, and is absent for anonymous reads.
    const user = c.get('anonymous') ? undefined : c.get('user');
    const tokenId = c.get('tokenId');
    const timeoutMs = options.timeoutFor(path);
    const targets = reads ? inOrder(options.origins, nar ? preferred : null) : options.origins.slice(0, 1);

    const asked = await askInTurn(
      targets,
      (origin) => origin.send({ method, path: path + url.search, headers, body: reads ? null : c.req.raw.body, user, tokenId, timeoutMs }),
      { hedgeMs: reads && !nar && several ? options.hedgeMs : 0, keep: keeper(c) },
    );
    let passed = asked.winner;
    let res: Response;
    if (!passed) {
      const { pass, failed } = chooseWithoutWinner(asked.attempts);
      passed = pass;
      res = pass ? (pass.result.kind === 'answer' ? passOn(method, pass.result.response) : failureResponse(pass.result)) : noOriginAnswered(failed);
    } else {
      res = passed.result.kind === 'answer' ? passOn(method, passed.result.response) : failureResponse(passed.result);
      if (several && reads && passed.result.kind === 'answer' && res.status === 200 && path.endsWith('.narinfo')) res = await routed(method, res, passed.origin.id);
    }
    c.set('provenance', provenance(asked, passed));
    return keepRangesOnFailure(path, res);
  };
}

/** A narinfo naming the origin that answered it in its NAR URL. */
async function routed(method: string, res: Response, originId: string): Promise<Response> {
  const headers = new Headers(res.headers);
  headers.delete('content-length');
  headers.delete('etag');
  if (method === 'HEAD') return new Response(null, { status: res.status, headers });
  const body = routeNarUrl(await res.text(), originId);
  headers.set('content-length', String(new TextEncoder().encode(body).length));
  return new Response(body, { status: res.status, headers });
}

/** waitUntil when the runtime has it (not under app.request in unit tests). */
function keeper(c: Context<EdgeEnv>): ((p: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return undefined;
  }
}
