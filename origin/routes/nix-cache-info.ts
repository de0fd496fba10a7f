import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';

export function renderCacheInfo(storeDir: string, priority: number): string {
  return `StoreDir: ${storeDir}\nWantMassQuery: 1\nPriority: ${priority}\n`;
}

export function getCacheInfo(c: Context<OriginEnv>) {
  const { storeDir, priority } = c.get('settings');
  return c.body(renderCacheInfo(storeDir, priority), 200, { 'Content-Type': 'text/x-nix-cache-info' });
}
