import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';

/** Prometheus text format. Like every origin route it needs the edge secret; the edge does not forward it. */
export function getMetrics(c: Context<OriginEnv>) {
  return c.body(c.get('deps').metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
}
