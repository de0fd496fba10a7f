/**
 * What `eris usage` shows: totals, per user, per cache and per day, and the
 * store paths with the most NAR bytes sent, for a range of days — as data
 * (--json) or as a table a person reads.
 */
import { formatBytes } from '../../shared/bytes.ts';
import { formatColumns } from '../cli/columns.ts';
import { COUNTERS, type UsageCounts, type UsageDb } from './db.ts';
import { dayOf } from './recorder.ts';

export interface UsageQuery {
  /** `7d` (today and the 6 days before), or a first day YYYY-MM-DD. */
  since: string;
  cache?: string;
  user?: string;
  /** A token id (`eris token list`'s 12 hex digits). */
  token?: string;
  top?: number;
}

export type Named<K extends string> = { [P in K]: string | null } & UsageCounts;

export interface UsageReport {
  since: string;
  until: string;
  cache: string | null;
  user: string | null;
  token: string | null;
  totals: UsageCounts;
  users: Named<'user'>[];
  /** Per token id and its user (token null: requests the edge named no token for, e.g. anonymous ones). */
  tokens: Named<'token' | 'user'>[];
  caches: Named<'cache'>[];
  days: Named<'day'>[];
  topPaths: { path: string; nars: number; bytes: number }[];
}

/** The first day a --since value includes; throws a one-line message when it is not one. */
export function parseSince(since: string, now = Date.now()): string {
  const m = /^(\d{1,4})d$/.exec(since);
  if (m && Number(m[1]) >= 1) return dayOf(now - (Number(m[1]) - 1) * 86_400_000);
  if (/^\d{4}-\d{2}-\d{2}$/.test(since) && !Number.isNaN(Date.parse(since))) return since;
  throw new Error(`--since: expected a number of days (7d) or a date (2026-01-31), got "${since}"`);
}

export function usageReport(db: UsageDb, q: UsageQuery, now = Date.now()): UsageReport {
  const f = { since: parseSince(q.since, now), cache: q.cache, user: q.user, token: q.token };
  const userName = (u: string | undefined) => (u === '' || u === undefined ? null : u);
  return {
    since: f.since,
    until: dayOf(now),
    cache: q.cache ?? null,
    user: q.user ?? null,
    token: q.token ?? null,
    totals: counts(db.totals(f, [])[0]),
    users: db.totals(f, ['user']).map((r) => ({ user: userName(r.user), ...counts(r) })),
    tokens: db.totals(f, ['token', 'user']).map((r) => ({ token: r.token || null, user: userName(r.user), ...counts(r) })),
    caches: db.totals(f, ['cache']).map((r) => ({ cache: r.cache ?? null, ...counts(r) })),
    days: db.totals(f, ['day']).map((r) => ({ day: r.day ?? null, ...counts(r) })).sort((a, b) => (a.day! < b.day! ? -1 : 1)),
    topPaths: db.topPaths(f, q.top ?? 10),
  };
}

function counts(r: Partial<UsageCounts> | undefined): UsageCounts {
  const out = {} as UsageCounts;
  for (const k of COUNTERS) out[k] = Number(r?.[k] ?? 0);
  return out;
}

/** Columns: the first left-aligned, the rest (counts, sizes) right-aligned. */
const table = (head: string[], rows: string[][]): string => formatColumns([head, ...rows], { alignRight: (i) => i > 0 });

const COUNT_HEAD = ['narinfo hits', 'misses', 'NARs', 'NAR bytes sent', 'pushes', 'bytes received'];
const countCells = (c: UsageCounts) => [String(c.narinfoHits), String(c.narinfoMisses), String(c.nars), formatBytes(c.narBytesSent), String(c.pushes), formatBytes(c.bytesReceived)];

export function formatUsage(r: UsageReport): string {
  const scope = [r.cache === null ? 'all caches' : `cache ${r.cache}`, r.user === null ? 'all users' : `user ${r.user}`, ...(r.token === null ? [] : [`token ${r.token}`])].join(', ');
  let out = `usage ${r.since} to ${r.until} (UTC days), ${scope}\n\n`;
  out += table(['', ...COUNT_HEAD], [['total', ...countCells(r.totals)]]);
  if (!r.users.length) return out + '\nnothing recorded in this range\n';
  out += '\ntop users\n' + table(['user', ...COUNT_HEAD], r.users.slice(0, 20).map((u) => [u.user ?? '(anonymous)', ...countCells(u)]));
  out += '\ntokens (ids as eris token list shows them)\n' + table(['token', 'user', ...COUNT_HEAD], r.tokens.slice(0, 20).map((t) => [t.token ?? '(none)', t.user ?? '(anonymous)', ...countCells(t)]));
  out += '\ncaches\n' + table(['cache', ...COUNT_HEAD], r.caches.map((c) => [c.cache ?? '', ...countCells(c)]));
  out += '\ndays\n' + table(['day', ...COUNT_HEAD], r.days.map((d) => [d.day ?? '', ...countCells(d)]));
  if (r.topPaths.length) {
    out += '\ntop paths by NAR bytes sent\n' + table(['path', 'NARs', 'bytes'], r.topPaths.map((p) => [p.path, String(p.nars), formatBytes(p.bytes)]));
  }
  return out;
}
