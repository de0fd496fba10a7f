import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { send } from '../respond.ts';

export function getVersion(c: Context<OriginEnv>) {
  return send(c, 200, JSON.stringify({ name: 'eris', version: c.get('settings').version }), 'application/json');
}
