/** What `eris published` says per root about retention: last use and what keeps it (or why the next sweep drops it). */
import { lastFetches } from './last-use.ts';
import { DAY_MS } from './plan.ts';
import { planSweep, type SweptCache } from './sweep.ts';

export interface RootRetention {
  /** ISO time of the last use (push, publish, pin or a fetch of a closure path). */
  lastUse?: string;
  /** `config`, `pin main`, `used 3 days ago`, or `dropped by the next sweep: …`. */
  retention: string;
}

export async function rootRetention(o: { storeRoot: string; storeDir: string; stateDir?: string; cache: SweptCache; caches: readonly SweptCache[] }): Promise<Map<string, RootRetention>> {
  const report = await planSweep({ ...o, lastFetches: lastFetches(o.stateDir, o.cache.name) });
  const out = new Map<string, RootRetention>();
  for (const d of report.plan.decisions) {
    const days = Math.max(0, Math.floor((report.now - d.lastUse) / DAY_MS));
    const retention = d.kind === 'config' ? 'kept: config root' : d.kind === 'pin' ? `kept: pin ${d.pin}` : d.keep ? `kept: used ${days ? `${days} day${days === 1 ? '' : 's'} ago` : 'today'}` : `dropped by the next sweep: ${d.why}`;
    out.set(d.source, { lastUse: d.kind === 'config' || !d.lastUse ? undefined : new Date(d.lastUse).toISOString(), retention });
  }
  return out;
}
