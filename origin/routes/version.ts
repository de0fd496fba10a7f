import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';

export function getVersion(c: Context<OriginEnv>) {
  return c.json({ name: 'eris', version: c.get('settings').version });
}
