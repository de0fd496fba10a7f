import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';

/** Cheap liveness: the process answers and the store DB answers a query. */
export function getHealth(c: Context<OriginEnv>) {
  c.get('deps').store.isValid(`${c.get('settings').storeDir}/health-check`);
  return c.text('ok\n');
}
