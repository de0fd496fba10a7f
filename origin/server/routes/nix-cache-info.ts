import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { send } from '../respond.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

export function renderCacheInfo(storeDir: string, priority: number): string {
  return `StoreDir: ${storeDir}\nWantMassQuery: 1\nPriority: ${priority}\n`;
}

export function getCacheInfo(c: Context<OriginEnv>) {
  const { storeDir, priority } = c.get('settings');
  return send(c, 200, renderCacheInfo(storeDir, priority), CONTENT_TYPE.cacheInfo);
}
