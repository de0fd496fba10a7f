/**
 * `GET /v1/admin/data` at the origin (behind the edge secret, as every
 * origin route): the figures of the edge's operator page (shared/admin.ts) —
 * each cache's published set and last push, the last ADMIN_DAYS days of
 * usage per cache, user and token id, top paths and recent pushes — read
 * from usage.sqlite (a read-only connection per request, after this
 * process's pending figures are flushed) and the published sets.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from 'hono';
import type { OriginEnv } from '../server/types.ts';
import { send } from '../server/respond.ts';
import type { CacheRegistry } from '../caches/registry.ts';
import { COUNTERS, USAGE_FILE, UsageDb, zeroCounts, type UsageCounts, type UsageFilter } from './db.ts';
import { ADMIN_DAYS, lastDays, type AdminData, type AdminSeries } from '../../shared/admin.ts';
import { CONTENT_TYPE } from '../../shared/contract.ts';

const counts = (r: Partial<UsageCounts> | undefined): UsageCounts => {
  const out = zeroCounts();
  for (const k of COUNTERS) out[k] = Number(r?.[k] ?? 0);
  return out;
};

/** One series over `days` (zeros where nothing happened) and its totals. */
function series(db: UsageDb, f: UsageFilter, name: string, days: string[]): AdminSeries {
  const byDay = new Map(db.totals(f, ['day']).map((r) => [r.day, counts(r)]));
  return { name, days: days.map((d) => byDay.get(d) ?? zeroCounts()), totals: counts(db.totals(f, [])[0]) };
}

export function adminData(o: { caches: CacheRegistry; stateDir?: string; now?: number }): AdminData {
  const now = o.now ?? Date.now();
  const days = lastDays(now, ADMIN_DAYS);
  const f: UsageFilter = { since: days[0]! };
  const file = o.stateDir && join(o.stateDir, USAGE_FILE);
  const db = file && existsSync(file) ? UsageDb.open(o.stateDir!, { readOnly: true }) : undefined;
  try {
    const last = new Map((db?.lastPushes() ?? []).map((p) => [p.cache, p]));
    return {
      generated: new Date(now).toISOString(),
      days,
      caches: o.caches.all.map((c) => {
        const set = o.caches.published(c.name);
        const whole = !set || set.kind === 'all';
        return {
          name: c.name,
          default: c.isDefault,
          paths: whole ? null : set.members.size,
          bytes: whole ? null : set.narBytes,
          roots: set?.roots.length ?? 0,
          lastPush: last.get(c.name) ?? null,
        };
      }),
      usageByCache: db ? db.totals(f, ['cache']).map((r) => series(db, { ...f, cache: r.cache! }, r.cache!, days)) : [],
      usageByUser: db ? db.totals(f, ['user']).map((r) => series(db, { ...f, user: r.user! }, r.user!, days)) : [],
      usageByToken: db
        ? db.totals(f, ['token', 'user']).map((r) => ({ ...series(db, { ...f, token: r.token!, user: r.user! }, r.token!, days), user: r.user! }))
        : [],
      topPaths: db?.topPaths(f, 10) ?? [],
      recentPushes: db?.recentPushes(f, 20) ?? [],
    };
  } finally {
    db?.close();
  }
}

export function getAdminData(caches: CacheRegistry) {
  return (c: Context<OriginEnv>) => {
    c.get('deps').usage?.flush();
    return send(c, 200, JSON.stringify(adminData({ caches, stateDir: c.get('settings').stateDir })), CONTENT_TYPE.json);
  };
}
