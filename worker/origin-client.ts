/**
 * The one way the Worker talks to an origin. Every request it sends:
 * - goes to the origin's URL + the path and query unchanged,
 * - carries the edge secret (and the user, when there is one), never the
 *   client's credentials,
 * - says `redirect: 'manual'` and `cache: 'no-store'`,
 * - has a budget for the response headers (raced, so a transport that ignores
 *   the abort signal cannot hold the caller either),
 * - passes the origin's circuit breaker unless the caller opts out.
 *
 * The answer is classified once here — an answer from the origin, the origin
 * refusing the edge secret, or a failure (unreachable, over budget, a gateway
 * in between saying it could not reach it, breaker open) — and transport
 * failures and breaker changes are logged here, through the injected log.
 * What a failure means to Nix is the caller's business (proxy, landing page).
 *
 * How the bytes travel is chosen by configuration (createOriginTransport):
 * a Workers VPC service binding to the tunnel, or fetch() to a tunnel
 * hostname, optionally behind Cloudflare Access (service token headers).
 */
import { EDGE_SECRET_HEADER, TOKEN_ID_HEADER, USER_HEADER } from '../shared/contract.ts';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.ts';
import type { Clock, Log } from './log.ts';

export type FetchOrigin = (request: Request) => Promise<Response>;

export interface OriginAccess {
  clientId: string;
  clientSecret: string;
}

export interface OriginBinding {
  fetch(request: Request): Promise<Response>;
}

/** The transport: the VPC binding when there is one, else fetch; Access headers added when configured. */
export function createOriginTransport(options: { binding?: OriginBinding; access?: OriginAccess; fetchImpl?: FetchOrigin }): FetchOrigin {
  const send: FetchOrigin = options.binding ? (req) => options.binding!.fetch(req) : (options.fetchImpl ?? ((req) => fetch(req)));
  const access = options.access;
  if (!access) return send;
  return (req) => {
    const withAccess = new Request(req);
    withAccess.headers.set('CF-Access-Client-Id', access.clientId);
    withAccess.headers.set('CF-Access-Client-Secret', access.clientSecret);
    return send(withAccess);
  };
}

/**
 * Statuses that mean something between the edge and the origin could not
 * reach it: cloudflared answers 502 when the origin's port is closed,
 * Cloudflare 530 (error 1033) when the tunnel is down, 52x for other origin
 * failures. Our origin never sends these itself.
 */
export const GATEWAY_FAILURES: ReadonlySet<number> = new Set([502, 504, 520, 521, 522, 523, 524, 525, 526, 527, 530]);

export interface OriginCall {
  method?: string;
  /** Path and query, forwarded unchanged. */
  path: string;
  headers?: Headers;
  body?: ReadableStream | null;
  /** The authenticated user, sent in USER_HEADER. */
  user?: string;
  /** The token's id, sent in TOKEN_ID_HEADER. */
  tokenId?: string;
  /** Budget for the response headers, ms. */
  timeoutMs: number;
  /** Skip the circuit breaker (the landing page: neither blocked by it nor counted). */
  bypassBreaker?: boolean;
}

export type OriginResult =
  /** The origin answered (any status it sends itself, 404 and 503 included). */
  | { kind: 'answer'; response: Response; ms: number }
  /** The origin answered 401/403: it refused the edge secret (a deployment fault). The body is already cancelled. */
  | { kind: 'refused'; status: number; ms: number }
  /** The breaker is open: nothing was sent. */
  | { kind: 'open'; retryAfterMs: number; ms: number }
  /** No answer in the budget. */
  | { kind: 'timeout'; budgetMs: number; ms: number }
  /** The connection failed. */
  | { kind: 'unreachable'; error: string; ms: number }
  /** A gateway in between (tunnel, Cloudflare) answered for the origin with this status; its body is cancelled. */
  | { kind: 'gateway'; status: number; ms: number };

export interface OriginClientOptions {
  /** Names the origin in the log. */
  id: string;
  /** Scheme, host and optional path prefix, without a trailing slash. */
  url: string;
  edgeSecret: string;
  transport: FetchOrigin;
  log: Log;
  now: Clock;
  breaker: { threshold: number; cooldownMs: number; trialTimeoutMs: number };
}

/** What callers need to ask an origin something. */
export interface OriginSender {
  readonly id: string;
  send(call: OriginCall): Promise<OriginResult>;
}

export interface OriginClient extends OriginSender {
  readonly url: string;
  readonly breaker: CircuitBreaker;
}

export function createOriginClient(o: OriginClientOptions): OriginClient {
  const breaker = new CircuitBreaker({
    ...o.breaker,
    now: o.now,
    onChange: (from: BreakerState, to: BreakerState, failures: number) =>
      o.log({ msg: 'origin circuit breaker', origin: o.id, from, to, failures }),
  });

  async function exchange(call: OriginCall): Promise<Response | { failed: 'timeout' } | { failed: 'unreachable'; error: string }> {
    const headers = new Headers(call.headers);
    headers.set(EDGE_SECRET_HEADER, o.edgeSecret);
    if (call.user) headers.set(USER_HEADER, call.user);
    if (call.tokenId) headers.set(TOKEN_ID_HEADER, call.tokenId);
    const method = call.method ?? 'GET';
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const timeout = new Promise<{ failed: 'timeout' }>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new Error('origin timeout'));
        resolve({ failed: 'timeout' });
      }, call.timeoutMs);
    });
    const request = o.transport(
      new Request(o.url + call.path, {
        method,
        headers,
        body: method === 'GET' || method === 'HEAD' ? null : (call.body ?? null),
        redirect: 'manual',
        signal: controller.signal,
        cache: 'no-store',
        // An upload streams as it arrives (Node's fetch insists on saying so; workerd ignores it).
        ...(method === 'GET' || method === 'HEAD' || !call.body ? {} : { duplex: 'half' }),
      } as RequestInit),
    ).catch((err: unknown) => (controller.signal.aborted ? { failed: 'timeout' as const } : { failed: 'unreachable' as const, error: String(err) }));
    try {
      const first = await Promise.race([request, timeout]);
      // An answer arriving after its budget is not read: free it.
      if (!(first instanceof Response)) {
        void request.then((late) => {
          if (late instanceof Response) late.body?.cancel().catch(() => {});
        });
      }
      return first;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    id: o.id,
    url: o.url,
    breaker,
    async send(call) {
      const started = o.now();
      const ms = () => o.now() - started;
      let permit: { success(): void; failure(): void } | undefined;
      if (!call.bypassBreaker) {
        const admission = breaker.admit();
        if (!admission.ok) return { kind: 'open', retryAfterMs: admission.retryAfterMs, ms: 0 };
        permit = admission.permit;
      }
      const res = await exchange(call);
      if (!(res instanceof Response)) {
        if (res.failed === 'unreachable') o.log({ msg: 'origin unreachable', origin: o.id, error: res.error });
        permit?.failure();
        return res.failed === 'timeout' ? { kind: 'timeout', budgetMs: call.timeoutMs, ms: ms() } : { kind: 'unreachable', error: res.error, ms: ms() };
      }
      if (GATEWAY_FAILURES.has(res.status)) {
        // Reported by a gateway in between (tunnel): the origin itself did not answer. Its body is the gateway's page.
        o.log({ msg: 'gateway could not reach the origin', origin: o.id, status: res.status });
        permit?.failure();
        await res.body?.cancel();
        return { kind: 'gateway', status: res.status, ms: ms() };
      }
      permit?.success();
      if (res.status === 401 || res.status === 403) {
        o.log({ msg: 'origin refused the edge secret; check EDGE_SECRET on both sides', origin: o.id, status: res.status });
        await res.body?.cancel();
        return { kind: 'refused', status: res.status, ms: ms() };
      }
      return { kind: 'answer', response: res, ms: ms() };
    },
  };
}
