/**
 * A store DB with Nix's schema (ValidPaths, Refs and their indexes, as Nix 2.8
 * creates them) holding made-up paths: for tests of the closure computation and
 * for bench/published-sets.ts (50 000 paths). No store files are written.
 */
import { createHash } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { encodeNix32 } from '../../shared/nix32.ts';

export const NIX_SCHEMA = `
CREATE TABLE IF NOT EXISTS ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer,
    sigs             text,
    ca               text
);
CREATE TABLE IF NOT EXISTS Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);
CREATE INDEX IF NOT EXISTS IndexReferrer on Refs(referrer);
CREATE INDEX IF NOT EXISTS IndexReference on Refs(reference);
CREATE TRIGGER IF NOT EXISTS DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;
`;

/** A made-up store path for a name: the hash part is derived from the name, so it is stable. */
export function fakeStorePath(name: string, storeDir = '/nix/store'): string {
  return `${storeDir}/${encodeNix32(createHash('sha256').update(name).digest().subarray(0, 20))}-${name}`;
}

export interface FakePath {
  name: string;
  /** Names of the paths this one references (they must come earlier, or be added in the same call). */
  refs?: string[];
  narSize?: number;
  deriver?: string;
}

/** Adds paths (and their references) to the DB at dbPath, creating it with Nix's schema if needed. */
export function addFakePaths(dbPath: string, paths: FakePath[], storeDir = '/nix/store'): void {
  const db = new DatabaseSync(dbPath);
  try {
    db.exec('PRAGMA journal_mode = WAL');
    db.exec(NIX_SCHEMA);
    const ins = db.prepare('INSERT OR IGNORE INTO ValidPaths (path, hash, registrationTime, deriver, narSize) VALUES (?, ?, ?, ?, ?)');
    const id = db.prepare('SELECT id FROM ValidPaths WHERE path = ?');
    const ref = db.prepare('INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?, ?)');
    db.exec('BEGIN');
    for (const p of paths) {
      const path = fakeStorePath(p.name, storeDir);
      ins.run(path, 'sha256:' + createHash('sha256').update(path).digest('hex'), 1, p.deriver ? fakeStorePath(p.deriver, storeDir) : null, p.narSize ?? 1000);
    }
    const idOf = (name: string) => (id.get(fakeStorePath(name, storeDir)) as { id: number } | undefined)?.id;
    for (const p of paths) {
      const from = idOf(p.name)!;
      for (const r of p.refs ?? []) {
        const to = idOf(r);
        if (to === undefined) throw new Error(`addFakePaths: ${p.name} references unknown ${r}`);
        ref.run(from, to);
      }
    }
    db.exec('COMMIT');
  } finally {
    db.close();
  }
}

/** Removes paths (and the references from them) from the DB, as a GC does. */
export function removeFakePaths(dbPath: string, names: string[], storeDir = '/nix/store'): void {
  const db = new DatabaseSync(dbPath);
  try {
    const q = db.prepare('DELETE FROM ValidPaths WHERE path = ?');
    const r = db.prepare('DELETE FROM Refs WHERE referrer = (SELECT id FROM ValidPaths WHERE path = ?)');
    db.exec('BEGIN');
    for (const n of names) {
      r.run(fakeStorePath(n, storeDir));
      q.run(fakeStorePath(n, storeDir));
    }
    db.exec('COMMIT');
  } finally {
    db.close();
  }
}
