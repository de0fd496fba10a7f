/**
 * The queries that compute published sets, on their own read-only connection to
 * Nix's DB (so a walk can hold one read transaction while requests keep using
 * the store's connection). Every query is prepared once.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';

export interface NodeRow {
  id: number;
  path: string;
  deriver: string | null;
  narSize: number | null;
}

export interface ClosureDb {
  /** The valid path, if it is one. */
  byPath(path: string): NodeRow | undefined;
  /** The ids of the paths `id` references (itself included when it refers to itself). */
  referenceIds(id: number): number[];
  /** The valid path with this id. */
  byId(id: number): NodeRow | undefined;
  /** Every valid path, for `publish = "all"` with exclusions. */
  allPaths(): Iterable<NodeRow>;
  /** Every reference edge, for `publish = "all"` with exclusions. */
  allRefs(): Iterable<{ referrer: number; reference: number }>;
  /** Changes whenever another connection (Nix) commits. */
  dataVersion(): number;
  /** Runs fn inside one read transaction, so a walk sees one state of the DB. */
  snapshot<T>(fn: () => Promise<T>): Promise<T>;
  close(): void;
}

export function openClosureDb(dbPath: string): ClosureDb {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  db.exec('PRAGMA busy_timeout = 0');
  const q = (sql: string): StatementSync => db.prepare(sql);
  const byPath = q('SELECT id, path, deriver, narSize FROM ValidPaths WHERE path = ?');
  // The walk reads ids only (the Refs index alone answers it); rows are read once per member afterwards.
  const refs = q('SELECT reference FROM Refs WHERE referrer = ?');
  const byId = q('SELECT id, path, deriver, narSize FROM ValidPaths WHERE id = ?');
  const all = q('SELECT id, path, deriver, narSize FROM ValidPaths');
  const allRefs = q('SELECT referrer, reference FROM Refs');
  const version = q('PRAGMA data_version');
  let inTx = false;
  return {
    byPath: (path) => byPath.get(path) as NodeRow | undefined,
    referenceIds: (id) => (refs.all(id) as { reference: number }[]).map((r) => r.reference),
    byId: (id) => byId.get(id) as NodeRow | undefined,
    allPaths: () => all.iterate() as IterableIterator<NodeRow>,
    allRefs: () => allRefs.iterate() as IterableIterator<{ referrer: number; reference: number }>,
    dataVersion: () => (version.get() as { data_version: number }).data_version,
    async snapshot(fn) {
      if (inTx) return fn();
      db.exec('BEGIN');
      inTx = true;
      try {
        return await fn();
      } finally {
        inTx = false;
        db.exec('COMMIT');
      }
    },
    close: () => db.close(),
  };
}
