import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { send } from '../respond.ts';

/** Prometheus text format. Like every origin route it needs the edge secret; the edge does not forward it. */
export async function getMetrics(c: Context<OriginEnv>) {
  const { metrics, clusterMetrics } = c.get('deps');
  const all = clusterMetrics ? await clusterMetrics() : metrics;
  return send(c, 200, all.render(), 'text/plain; version=0.0.4; charset=utf-8');
}
