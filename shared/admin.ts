/**
 * The operator's page: the edge serves ADMIN_PATH (HTML) and ADMIN_DATA_PATH
 * (the same figures as JSON) to tokens with the `admin` scope; the figures
 * come from the origin's ADMIN_DATA_PATH, behind the edge secret like every
 * origin route. This file is the contract between both halves: pure, no I/O.
 * Nothing in AdminData is a secret: tokens appear only as their ids.
 */

export const ADMIN_PATH = '/v1/admin';
export const ADMIN_DATA_PATH = '/v1/admin/data';
/** How many days the page charts (today included). */
export const ADMIN_DAYS = 30;

/** The paths that take the `admin` scope (and nothing else does). */
export const isAdminPath = (path: string): boolean => path === ADMIN_PATH || path.startsWith(ADMIN_PATH + '/');

/** What one day (or a total) counts: the same figures as `eris usage --json`. */
export interface AdminCounts {
  narinfoHits: number;
  narinfoMisses: number;
  nars: number;
  narBytesSent: number;
  pushes: number;
  bytesReceived: number;
}

/** A series: one entry per day of AdminData.days, in the same order (zeros on days without traffic). */
export interface AdminSeries {
  /** The cache, user or token id the series is about ('' for anonymous requests). */
  name: string;
  days: AdminCounts[];
  totals: AdminCounts;
}

export interface AdminPush {
  /** ISO time the path was accepted. */
  at: string;
  cache: string;
  user: string;
  /** The pushing token's id ('' when the origin was not told one). */
  token: string;
  storePath: string;
  narSize: number;
}

export interface AdminCache {
  name: string;
  default: boolean;
  /** Store paths published (closure-complete set); null when the cache publishes the whole store. */
  paths: number | null;
  /** Their NAR bytes (sum of NarSize); null when the cache publishes the whole store. */
  bytes: number | null;
  /** GC roots or other roots the set is computed from (0 when the cache publishes everything). */
  roots: number;
  lastPush: AdminPush | null;
}

export interface AdminData {
  /** The origin that answered, as it names itself (its version), and when. */
  generated: string;
  /** The charted days, oldest first, YYYY-MM-DD (UTC). */
  days: string[];
  caches: AdminCache[];
  usageByCache: AdminSeries[];
  usageByUser: AdminSeries[];
  usageByToken: (AdminSeries & { user: string })[];
  topPaths: { path: string; nars: number; bytes: number }[];
  recentPushes: AdminPush[];
}

/** The last `n` UTC days ending with the day of `now`, oldest first. */
export function lastDays(now: number, n: number = ADMIN_DAYS): string[] {
  const out: string[] = [];
  for (let i = n - 1; i >= 0; i--) out.push(new Date(now - i * 86_400_000).toISOString().slice(0, 10));
  return out;
}
