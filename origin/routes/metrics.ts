import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { send } from '../respond.ts';

/** Prometheus text format. Like every origin route it needs the edge secret; the edge does not forward it. */
export function getMetrics(c: Context<OriginEnv>) {
  return send(c, 200, c.get('deps').metrics.render(), 'text/plain; version=0.0.4; charset=utf-8');
}
