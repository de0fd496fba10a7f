/** `eris doctor`'s check of GC-safe serving: how NARs being served are kept from Nix's GC (temp-roots.ts). */
import type { OriginConfig } from '../config/index.ts';
import type { Check } from '../cli/doctor/check.ts';
import { planTempRoots } from './temp-roots.ts';

export function checkTempRoots(config: Pick<OriginConfig, 'tempRoots' | 'storeRoot' | 'push'>): Check {
  const what = 'temporary GC roots';
  const { mode, socket } = planTempRoots({ tempRoots: config.tempRoots, storeRoot: config.storeRoot, pushStore: config.push?.storeUri });
  if (mode === 'daemon') return { status: 'ok', what, detail: `NARs being served are held through the Nix daemon at ${socket}` };
  if (mode === 'local') return { status: 'ok', what, detail: 'this user owns the store: NARs being served are held through a private nix-daemon on it' };
  if (config.tempRoots === 'off') return { status: 'skip', what, detail: 'temp_roots = "off": a garbage collection may cut a download off' };
  return {
    status: 'FAIL',
    what,
    detail: `no daemon socket at ${socket} and this user cannot write the store: a garbage collection may cut downloads off (start nix-daemon, or set temp_roots = "off" to accept that)`,
  };
}
