/**
 * The only code that reads Nix's store database. Opened read-only (not
 * immutable), so paths registered after start — `nix copy --to ssh://…` — are
 * visible at once. Queries are prepared once.
 */
import type { DatabaseSync as Database, StatementSync } from 'node:sqlite';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { formatSha256Nix32, parseSha256 } from '../../shared/hash.ts';

/**
 * node:sqlite, loaded when a DB is opened, not when this module is: the packed client (origin/cli/packed.ts)
 * holds this module for `eris push`'s closure query, and most of its commands open no DB.
 */
const sqlite = () => createRequire(import.meta.url)('node:sqlite') as { DatabaseSync: typeof Database };

export interface PathRow {
  id: number;
  path: string;
  /** `sha256:<hex>` as Nix stores it. */
  hash: string;
  deriver: string | null;
  narSize: number | null;
  sigs: string | null;
  ca: string | null;
}

/** What a row says of its path as eris and Nix's JSON write it: NarHash `sha256:<nix32>`, NarSize, signatures, deriver and CA when set. */
export interface RowFacts {
  narHash: string;
  narSize: number;
  sigs: string[];
  deriver?: string;
  ca?: string;
}

export function rowFacts(row: PathRow): RowFacts {
  const facts: RowFacts = { narHash: formatSha256Nix32(parseSha256(row.hash)), narSize: Number(row.narSize ?? 0), sigs: row.sigs ? row.sigs.split(' ').filter(Boolean) : [] };
  if (row.deriver) facts.deriver = row.deriver;
  if (row.ca) facts.ca = row.ca;
  return facts;
}

export interface StoreDb {
  /** The valid path whose hash part is `hashPart`, if any. */
  byHashPart(hashPart: string): PathRow | undefined;
  /** Full paths of the references of path `id`, sorted as Nix sorts them. */
  references(id: number): string[];
  /** True while `path` is still registered as valid. */
  isValid(path: string): boolean;
  /** Changes whenever another connection (Nix) has committed to the DB. */
  dataVersion(): number;
  /** A realisation of a content-addressed derivation output, when the store has the table (ca-derivations). */
  realisation(drvHash: string, outputName: string): RealisationRow | undefined;
  /** Runs `fn` in one read transaction: its queries see one state of the DB and take its read lock once. */
  snapshot<T>(fn: () => T): T;
  /** How many paths are valid (`eris doctor`). */
  validPathCount(): number;
  /** The most recently registered valid path that is not a .drv, as an example (`eris dev`). */
  newestPath(): string | undefined;
  close(): void;
}

export interface RealisationRow {
  outPath: string;
  signatures: string | null;
  /** `drvPath!outputName` → output path of each realisation this one depends on. */
  dependents: { id: string; outPath: string }[];
}

export class StoreBusyError extends Error {
  override name = 'StoreBusyError';
}

export interface OpenStoreDbOptions {
  /**
   * Milliseconds SQLite itself may block on a lock. node:sqlite is synchronous, so this stalls the whole
   * process: keep it 0 and let the caller retry asynchronously (store.ts does).
   */
  busyTimeoutMs?: number;
}

export function openStoreDb(dbPath: string, storeDir: string, options: OpenStoreDbOptions = {}): StoreDb {
  if (!existsSync(dbPath)) throw new Error(`no Nix store database at ${dbPath}`);
  const db = new (sqlite().DatabaseSync)(dbPath, { readOnly: true });
  db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 0))}`);
  // Fails fast on a file that is not a Nix database.
  db.prepare('SELECT id, path, hash, deriver, narSize, sigs, ca FROM ValidPaths LIMIT 0').all();

  const byPrefix: StatementSync = db.prepare(
    'SELECT id, path, hash, deriver, narSize, sigs, ca FROM ValidPaths WHERE path >= ? ORDER BY path LIMIT 1',
  );
  const refs: StatementSync = db.prepare(
    'SELECT v.path AS path FROM Refs r JOIN ValidPaths v ON r.reference = v.id WHERE r.referrer = ? ORDER BY v.path',
  );
  const valid: StatementSync = db.prepare('SELECT 1 AS ok FROM ValidPaths WHERE path = ?');
  const version: StatementSync = db.prepare('PRAGMA data_version');
  // Only stores that have used ca-derivations have these tables.
  const hasRealisations = db.prepare("SELECT 1 AS ok FROM sqlite_master WHERE type = 'table' AND name = 'RealisationsRefs'").get() !== undefined;
  const realisationQ = hasRealisations
    ? db.prepare('SELECT r.id AS id, v.path AS outPath, r.signatures AS signatures FROM Realisations r JOIN ValidPaths v ON r.outputPath = v.id WHERE r.drvPath = ? AND r.outputName = ?')
    : undefined;
  const realisationRefsQ = hasRealisations
    ? db.prepare("SELECT d.drvPath || '!' || d.outputName AS id, v.path AS outPath FROM RealisationsRefs x JOIN Realisations d ON x.realisationReference = d.id JOIN ValidPaths v ON d.outputPath = v.id WHERE x.referrer = ?")
    : undefined;

  const run = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/database is locked|SQLITE_BUSY|database table is locked/i.test(msg)) throw new StoreBusyError(msg);
      throw e;
    }
  };

  return {
    byHashPart(hashPart) {
      const prefix = `${storeDir}/${hashPart}`;
      const row = run(() => byPrefix.get(prefix)) as PathRow | undefined;
      return row && row.path.startsWith(prefix + '-') ? row : undefined;
    },
    references(id) {
      return (run(() => refs.all(id)) as { path: string }[]).map((r) => r.path);
    },
    isValid(path) {
      return run(() => valid.get(path)) !== undefined;
    },
    realisation(drvHash, outputName) {
      if (!realisationQ || !realisationRefsQ) return undefined;
      const row = run(() => realisationQ.get(drvHash, outputName)) as { id: number; outPath: string; signatures: string | null } | undefined;
      if (!row) return undefined;
      const dependents = run(() => realisationRefsQ.all(row.id)) as { id: string; outPath: string }[];
      return { outPath: row.outPath, signatures: row.signatures, dependents };
    },
    dataVersion() {
      return (run(() => version.get()) as { data_version: number }).data_version;
    },
    snapshot(fn) {
      run(() => db.exec('BEGIN'));
      try {
        return fn();
      } finally {
        db.exec('COMMIT');
      }
    },
    validPathCount() {
      return (run(() => db.prepare('SELECT COUNT(*) AS n FROM ValidPaths').get()) as { n: number }).n;
    },
    newestPath() {
      const q = "SELECT path FROM ValidPaths WHERE path NOT LIKE '%.drv' ORDER BY registrationTime DESC LIMIT 1";
      return (run(() => db.prepare(q).get()) as { path: string } | undefined)?.path;
    },
    close() {
      db.close();
    },
  };
}
