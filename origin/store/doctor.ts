/** `eris doctor`'s check of GC-safe serving: how NARs being served are kept from Nix's GC (temp-roots.ts). */
import type { OriginConfig } from '../config/index.ts';
import type { Check } from '../cli/doctor/check.ts';
import { existsSync } from 'node:fs';
import { planTempRoots } from './temp-roots.ts';

export function checkTempRoots(config: Pick<OriginConfig, 'tempRoots' | 'storeRoot' | 'push'>): Check {
  const what = 'temporary GC roots';
  const { mode, socket } = planTempRoots({ tempRoots: config.tempRoots, storeRoot: config.storeRoot, pushStore: config.push?.storeUri });
  if (mode === 'local') return { status: 'ok', what, detail: 'this user owns the store: NARs being served are held through a private nix-daemon on it' };
  if (mode === 'off') return { status: 'skip', what, detail: 'temp_roots = "off": a garbage collection may cut a download off' };
  if (existsSync(socket)) return { status: 'ok', what, detail: `NARs being served are held through the Nix daemon at ${socket}` };
  return {
    status: 'FAIL',
    what,
    detail: `no daemon socket at ${socket}: a garbage collection may cut downloads off (start nix-daemon, or set temp_roots = "off" to accept that)`,
  };
}
