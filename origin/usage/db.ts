/**
 * usage.sqlite in the origin's state directory: per UTC day, user and cache,
 * the requests by kind and the NAR bytes sent and received, plus NAR bytes per
 * store path (for "top paths"). Rows only ever grow by additive UPSERTs inside
 * one transaction, so several origin workers may each flush their own figures
 * into the same file; rows older than the retention are deleted.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { AdminCounts } from '../../shared/admin.ts';

export const USAGE_FILE = 'usage.sqlite';

/** The counters kept per (day, user, token, cache): the same figures the operator's page shows (shared/admin.ts). */
export type UsageCounts = AdminCounts;
export const COUNTERS = ['narinfoHits', 'narinfoMisses', 'nars', 'narBytesSent', 'pushes', 'bytesReceived'] as const satisfies readonly (keyof UsageCounts)[];
const COLUMNS: Record<keyof UsageCounts, string> = {
  narinfoHits: 'narinfo_hits',
  narinfoMisses: 'narinfo_misses',
  nars: 'nars',
  narBytesSent: 'nar_bytes_sent',
  pushes: 'pushes',
  bytesReceived: 'bytes_received',
};

export const zeroCounts = (): UsageCounts => ({ narinfoHits: 0, narinfoMisses: 0, nars: 0, narBytesSent: 0, pushes: 0, bytesReceived: 0 });

/** One row to add: `user` is '' for anonymous requests; `token` the token's id (shared/contract.ts tokenId), '' when none. */
export interface UsageRow extends UsageCounts {
  day: string;
  user: string;
  token: string;
  cache: string;
}
export interface PathRow {
  day: string;
  user: string;
  token: string;
  cache: string;
  path: string;
  nars: number;
  bytes: number;
}
/** One accepted pushed path. */
export interface PushRow {
  /** ISO time. */
  at: string;
  user: string;
  token: string;
  cache: string;
  storePath: string;
  narSize: number;
}

export interface UsageFilter {
  /** First day included, YYYY-MM-DD. */
  since: string;
  cache?: string;
  user?: string;
  token?: string;
}

const TABLES = {
  usage: `(
  day TEXT NOT NULL, user TEXT NOT NULL, token TEXT NOT NULL DEFAULT '', cache TEXT NOT NULL,
  narinfo_hits INTEGER NOT NULL DEFAULT 0, narinfo_misses INTEGER NOT NULL DEFAULT 0,
  nars INTEGER NOT NULL DEFAULT 0, nar_bytes_sent INTEGER NOT NULL DEFAULT 0,
  pushes INTEGER NOT NULL DEFAULT 0, bytes_received INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, user, token, cache)
) WITHOUT ROWID`,
  usage_paths: `(
  day TEXT NOT NULL, user TEXT NOT NULL, token TEXT NOT NULL DEFAULT '', cache TEXT NOT NULL, path TEXT NOT NULL,
  nars INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, user, token, cache, path)
) WITHOUT ROWID`,
};
const SCHEMA = `
CREATE TABLE IF NOT EXISTS usage ${TABLES.usage};
CREATE TABLE IF NOT EXISTS usage_paths ${TABLES.usage_paths};
CREATE TABLE IF NOT EXISTS pushes (
  at TEXT NOT NULL, day TEXT NOT NULL, user TEXT NOT NULL, token TEXT NOT NULL, cache TEXT NOT NULL,
  store_path TEXT NOT NULL, nar_size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pushes_at ON pushes (at);
`;

/** usage.sqlite files written before token ids: their rows move to the keyed-by-token tables with token ''. */
function migrate(db: DatabaseSync): void {
  const hasToken = (table: string) => (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).some((c) => c.name === 'token');
  if (hasToken('usage') && hasToken('usage_paths')) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    for (const table of ['usage', 'usage_paths'] as const) {
      if (hasToken(table)) continue;
      const cols = (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name).join(', ');
      db.exec(`ALTER TABLE ${table} RENAME TO ${table}_before_tokens`);
      db.exec(`CREATE TABLE ${table} ${TABLES[table]}`);
      db.exec(`INSERT INTO ${table} (${cols}) SELECT ${cols} FROM ${table}_before_tokens`);
      db.exec(`DROP TABLE ${table}_before_tokens`);
    }
    db.exec('COMMIT');
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}

export class UsageDb {
  private readonly db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.db = db;
  }

  /** Opens (creating the directory and schema) the usage database of a state directory. */
  static open(stateDir: string, o: { readOnly?: boolean } = {}): UsageDb {
    const file = join(stateDir, USAGE_FILE);
    if (o.readOnly) return new UsageDb(new DatabaseSync(file, { readOnly: true }));
    mkdirSync(stateDir, { recursive: true, mode: 0o750 });
    const db = new DatabaseSync(file);
    // Never wait for another worker's write lock on the event loop: a busy flush is retried a second later.
    db.exec('PRAGMA busy_timeout = 0');
    try {
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec(SCHEMA);
      migrate(db);
    } catch (e) {
      if (!isBusy(e)) throw e;
      // Another worker is creating it at this very moment: wait for it, once, at start-up.
      db.exec('PRAGMA busy_timeout = 5000');
      db.exec('PRAGMA journal_mode = WAL');
      db.exec(SCHEMA);
      migrate(db);
      db.exec('PRAGMA busy_timeout = 0');
    }
    return new UsageDb(db);
  }

  /** Adds the rows to what is stored, in one transaction. Throws a busy error (see isBusy) when another writer holds the lock. */
  add(rows: readonly UsageRow[], paths: readonly PathRow[], o: { waitMs?: number; pushes?: readonly PushRow[] } = {}): void {
    const pushes = o.pushes ?? [];
    if (!rows.length && !paths.length && !pushes.length) return;
    if (o.waitMs) this.db.exec(`PRAGMA busy_timeout = ${Math.floor(o.waitMs)}`);
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const cols = COUNTERS.map((k) => COLUMNS[k]);
        const up = this.db.prepare(
          `INSERT INTO usage (day, user, token, cache, ${cols.join(', ')}) VALUES (?, ?, ?, ?, ${cols.map(() => '?').join(', ')})
           ON CONFLICT (day, user, token, cache) DO UPDATE SET ${cols.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
        );
        for (const r of rows) up.run(r.day, r.user, r.token, r.cache, ...COUNTERS.map((k) => r[k]));
        const p = this.db.prepare(
          `INSERT INTO usage_paths (day, user, token, cache, path, nars, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (day, user, token, cache, path) DO UPDATE SET nars = nars + excluded.nars, bytes = bytes + excluded.bytes`,
        );
        for (const r of paths) p.run(r.day, r.user, r.token, r.cache, r.path, r.nars, r.bytes);
        const push = this.db.prepare('INSERT INTO pushes (at, day, user, token, cache, store_path, nar_size) VALUES (?, ?, ?, ?, ?, ?, ?)');
        for (const r of pushes) push.run(r.at, r.at.slice(0, 10), r.user, r.token, r.cache, r.storePath, r.narSize);
        this.db.exec('COMMIT');
      } catch (e) {
        this.db.exec('ROLLBACK');
        throw e;
      }
    } finally {
      if (o.waitMs) this.db.exec('PRAGMA busy_timeout = 0');
    }
  }

  /** Deletes the days before `firstKept` (YYYY-MM-DD). */
  prune(firstKept: string): void {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      this.db.prepare('DELETE FROM usage WHERE day < ?').run(firstKept);
      this.db.prepare('DELETE FROM usage_paths WHERE day < ?').run(firstKept);
      this.db.prepare('DELETE FROM pushes WHERE day < ?').run(firstKept);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  private where(f: UsageFilter): [string, string[]] {
    const clauses = ['day >= ?'];
    const args = [f.since];
    if (f.cache !== undefined) clauses.push('cache = ?'), args.push(f.cache);
    if (f.user !== undefined) clauses.push('user = ?'), args.push(f.user);
    if (f.token !== undefined) clauses.push('token = ?'), args.push(f.token);
    return [clauses.join(' AND '), args];
  }

  /** Sums of the counters grouped by the given columns. */
  totals(f: UsageFilter, groupBy: ('day' | 'user' | 'token' | 'cache')[]): (Partial<Record<'day' | 'user' | 'token' | 'cache', string>> & UsageCounts)[] {
    const [where, args] = this.where(f);
    const sums = COUNTERS.map((k) => `COALESCE(SUM(${COLUMNS[k]}), 0) AS ${k}`).join(', ');
    const group = groupBy.length ? ` GROUP BY ${groupBy.join(', ')} ORDER BY narBytesSent DESC, ${groupBy.join(', ')}` : '';
    const select = groupBy.length ? `${groupBy.join(', ')}, ${sums}` : sums;
    return this.db.prepare(`SELECT ${select} FROM usage WHERE ${where}${group}`).all(...args) as never;
  }

  /** The store paths with the most NAR bytes sent. */
  topPaths(f: UsageFilter, limit: number): { path: string; nars: number; bytes: number }[] {
    const [where, args] = this.where(f);
    return this.db
      .prepare(`SELECT path, SUM(nars) AS nars, SUM(bytes) AS bytes FROM usage_paths WHERE ${where} GROUP BY path ORDER BY bytes DESC, path LIMIT ?`)
      .all(...args, limit) as never;
  }

  /** The latest accepted pushes, newest first. */
  recentPushes(f: UsageFilter, limit: number): PushRow[] {
    const [where, args] = this.where(f);
    return this.db
      .prepare(`SELECT at, user, token, cache, store_path AS storePath, nar_size AS narSize FROM pushes WHERE ${where} ORDER BY at DESC LIMIT ?`)
      .all(...args, limit) as never;
  }

  /** Each cache's latest push. */
  lastPushes(): PushRow[] {
    return this.db
      .prepare(`SELECT at, user, token, cache, store_path AS storePath, nar_size AS narSize FROM pushes p
        WHERE at = (SELECT MAX(at) FROM pushes q WHERE q.cache = p.cache) GROUP BY cache`)
      .all() as never;
  }

  /** The last day each path was fetched from a cache (retention's "last use"). */
  lastFetchDays(cache: string): { path: string; day: string }[] {
    return this.db.prepare('SELECT path, MAX(day) AS day FROM usage_paths WHERE cache = ? GROUP BY path').all(cache) as never;
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

export function isBusy(e: unknown): boolean {
  const err = e as { errcode?: number; message?: string };
  // SQLITE_BUSY (5) and its extended codes.
  return (typeof err?.errcode === 'number' && (err.errcode & 0xff) === 5) || /database is locked|SQLITE_BUSY/.test(err?.message ?? '');
}
