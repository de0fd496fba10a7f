/**
 * `<state_dir>/retention.sqlite`: which roots retention dropped (so a later
 * `eris gc --delete` still knows which paths eris had published) and when each
 * cache was last swept (so, with several origin workers, one of them sweeps).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

export const RETENTION_FILE = 'retention.sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS dropped (
  cache TEXT NOT NULL, store_path TEXT NOT NULL, dropped_at INTEGER NOT NULL,
  PRIMARY KEY (cache, store_path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sweeps (cache TEXT PRIMARY KEY, last_at INTEGER NOT NULL) WITHOUT ROWID;
`;

export interface Journal {
  /** Remembers the store paths of dropped roots. */
  dropped(cache: string, storePaths: readonly string[], at: number): void;
  /** Store paths of roots dropped earlier (still to be deleted, or already gone). */
  droppedPaths(cache: string): string[];
  /** Forgets dropped roots (deleted, or no longer valid). */
  forget(cache: string, storePaths: readonly string[]): void;
  /** True (and records `now`) when the cache was last swept at least `everyMs` ago: this process sweeps. */
  claimSweep(cache: string, now: number, everyMs: number): boolean;
  close(): void;
}

export function openJournal(stateDir: string): Journal {
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  const db = new DatabaseSync(join(stateDir, RETENTION_FILE));
  db.exec('PRAGMA busy_timeout = 5000');
  db.exec('PRAGMA journal_mode = WAL');
  db.exec(SCHEMA);
  const tx = <T>(fn: () => T): T => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const r = fn();
      db.exec('COMMIT');
      return r;
    } catch (e) {
      db.exec('ROLLBACK');
      throw e;
    }
  };
  return {
    dropped(cache, storePaths, at) {
      const q = db.prepare('INSERT INTO dropped (cache, store_path, dropped_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET dropped_at = excluded.dropped_at');
      tx(() => storePaths.forEach((p) => q.run(cache, p, at)));
    },
    droppedPaths: (cache) => (db.prepare('SELECT store_path FROM dropped WHERE cache = ? ORDER BY store_path').all(cache) as { store_path: string }[]).map((r) => r.store_path),
    forget(cache, storePaths) {
      const q = db.prepare('DELETE FROM dropped WHERE cache = ? AND store_path = ?');
      tx(() => storePaths.forEach((p) => q.run(cache, p)));
    },
    claimSweep(cache, now, everyMs) {
      return tx(() => {
        const row = db.prepare('SELECT last_at FROM sweeps WHERE cache = ?').get(cache) as { last_at: number } | undefined;
        if (row && now - row.last_at < everyMs) return false;
        db.prepare('INSERT INTO sweeps (cache, last_at) VALUES (?, ?) ON CONFLICT DO UPDATE SET last_at = excluded.last_at').run(cache, now);
        return true;
      });
    },
    close: () => db.isOpen && db.close(),
  };
}
