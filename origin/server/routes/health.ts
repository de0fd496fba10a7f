import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { send, TEXT } from '../respond.ts';

/** Cheap liveness: the process answers and the store DB answers a query. */
export async function getHealth(c: Context<OriginEnv>) {
  await c.get('deps').store.isValid(`${c.get('settings').storeDir}/health-check`);
  return send(c, 200, 'ok\n', TEXT);
}
