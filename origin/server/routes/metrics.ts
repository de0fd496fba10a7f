/**
 * `/metrics` in the Prometheus text format, reachable three ways:
 * - on the main port with `Authorization: Bearer <metrics_token_file's token>`
 *   (a stock scrape config: `authorization: { credentials_file: … }`);
 * - on the main port with the edge secret (as every origin route);
 * - on `metrics_bind`, a listener of its own that answers nothing else and
 *   asks for nothing (loopback by default).
 * The edge never forwards /metrics (it answers 404 itself).
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { AppSettings, OriginDeps, OriginEnv } from '../types.ts';
import { NO_STORE, send, TEXT } from '../respond.ts';
import { sameSecret } from '../middleware/edge-auth/index.ts';
import { EDGE_SECRET_HEADER } from '../../../shared/contract.ts';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The text for all of this origin's processes (cluster mode asks every worker). */
const exposition = async (deps: Pick<OriginDeps, 'metrics' | 'clusterMetrics'>) => (deps.clusterMetrics ? await deps.clusterMetrics() : deps.metrics).render();

export async function getMetrics(c: Context<OriginEnv>) {
  return send(c, 200, await exposition(c.get('deps')), METRICS_CONTENT_TYPE);
}

/** Lets /metrics through with the metrics token (Bearer) or the edge secret; anything else is a 401 naming Bearer. */
export function metricsAccess(settings: Pick<AppSettings, 'edgeSecret' | 'metricsToken'>): MiddlewareHandler<OriginEnv> {
  return async function metricsAccessMiddleware(c, next) {
    const secret = c.req.header(EDGE_SECRET_HEADER);
    const auth = c.req.header('authorization');
    const bearer = auth !== undefined && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
    const ok = (secret !== undefined && sameSecret(secret, settings.edgeSecret)) ||
      (bearer !== undefined && settings.metricsToken !== undefined && sameSecret(bearer, settings.metricsToken));
    if (ok) return next();
    c.get('deps').log.warn({ msg: 'metrics request without a valid credential', status: 401 });
    return send(c, 401, 'unauthorized: /metrics takes Authorization: Bearer <metrics_token_file> (or use metrics_bind)\n', TEXT, {
      'WWW-Authenticate': 'Bearer realm="eris metrics"',
    });
  };
}

/** The metrics_bind listener's whole app: GET or HEAD /metrics, nothing else. */
export function metricsListener(deps: Pick<OriginDeps, 'metrics' | 'clusterMetrics'>): (req: Request) => Promise<Response> {
  const plain = (status: number, body: string, extra: Record<string, string> = {}) =>
    new Response(body, { status, headers: { 'Content-Type': TEXT, 'Cache-Control': NO_STORE, ...extra } });
  return async (req) => {
    if (new URL(req.url).pathname !== '/metrics') return plain(404, 'not found: this listener serves /metrics only\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    const body = await exposition(deps);
    return new Response(req.method === 'HEAD' ? null : body, {
      status: 200,
      headers: { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': NO_STORE },
    });
  };
}
