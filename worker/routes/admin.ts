/**
 * `GET /v1/admin` (HTML) and `GET /v1/admin/data` (JSON) at the edge, for
 * tokens with the `admin` scope (the auth middleware refuses every other
 * token with the same 401 as a bad one). The figures come from the first
 * origin, in priority order, that answers its ADMIN_DATA_PATH (edge secret,
 * a budget; each origin keeps its own usage, so they are that origin's); every
 * origin's health is asked at once, beside the breakers (neither blocked by
 * them nor counted), and shown with its breaker's state. The page renders
 * without figures when no origin answers, and then says 503.
 */
import type { Context } from 'hono';
import type { EdgeEnv } from '../types.ts';
import type { OriginClient } from '../origin-client.ts';
import type { Log } from '../log.ts';
import { ADMIN_DATA_PATH, type AdminData } from '../../shared/admin.ts';
import { renderAdmin, type OriginStatus } from './admin-render.ts';

export interface AdminOptions {
  /** In priority order: the first that gives the figures is shown. */
  origins: OriginClient[];
  timeoutMs: number;
  log: Log;
}

const HTML_HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  // No script, no outside resource: the page is its own stylesheet and SVG.
  'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

async function originStatus(origin: OriginClient, timeoutMs: number): Promise<OriginStatus> {
  const breaker = origin.breaker.current;
  const r = await origin.send({ path: '/health', timeoutMs, bypassBreaker: true });
  if (r.kind !== 'answer') return { id: origin.id, breaker, health: r.kind === 'gateway' || r.kind === 'refused' ? `${r.kind} ${r.status}` : r.kind, ms: r.ms };
  await r.response.body?.cancel();
  return { id: origin.id, breaker, health: r.response.status === 200 ? 'ok' : `HTTP ${r.response.status}`, ms: r.ms };
}

/** The figures from the first origin, in priority order, that gives them; or why none did (logged). */
async function fetchData(o: AdminOptions, timeoutMs: number): Promise<{ data: AdminData; from: string } | { problem: string }> {
  const why: string[] = [];
  for (const origin of o.origins) {
    const r = await origin.send({ path: ADMIN_DATA_PATH, timeoutMs });
    if (r.kind !== 'answer') {
      why.push(`${origin.id}: ${r.kind}`);
      continue;
    }
    if (r.response.status !== 200) {
      await r.response.body?.cancel();
      o.log({ msg: 'admin page: origin did not give the figures', origin: origin.id, status: r.response.status });
      why.push(`${origin.id}: HTTP ${r.response.status}`);
      continue;
    }
    try {
      return { data: (await r.response.json()) as AdminData, from: origin.id };
    } catch (err) {
      o.log({ msg: 'admin page: unreadable figures', origin: origin.id, error: String(err) });
      why.push(`${origin.id}: unreadable answer`);
    }
  }
  return { problem: `No origin gave the figures (${why.join(', ')}).` };
}

export function adminRoutes(o: AdminOptions) {
  const budget = Math.min(o.timeoutMs, 10_000);
  const gather = () => Promise.all([fetchData(o, budget), Promise.all(o.origins.map((x) => originStatus(x, Math.min(budget, 5000))))]);
  return {
    async page(c: Context<EdgeEnv>): Promise<Response> {
      const [got, origins] = await gather();
      const host = new URL(c.req.url).host;
      const page = 'data' in got
        ? await renderAdmin({ host, data: got.data, from: got.from, origins })
        : await renderAdmin({ host, data: null, from: null, problem: got.problem, origins });
      return c.body(page, 'data' in got ? 200 : 503, HTML_HEADERS);
    },
    async data(c: Context<EdgeEnv>): Promise<Response> {
      const [got, origins] = await gather();
      if (!('data' in got)) return c.json({ error: got.problem, origins }, 503);
      return c.json({ ...got.data, from: got.from, origins });
    },
  };
}
