import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { send } from '../respond.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

export function getVersion(c: Context<OriginEnv>) {
  return send(c, 200, JSON.stringify({ name: 'eris', version: c.get('settings').version }), CONTENT_TYPE.json);
}
