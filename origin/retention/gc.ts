/**
 * One `eris gc` (by hand or the origin's own sweep): plan, drop the chosen
 * roots unless it is a dry run, remember them, and with `delete` ask Nix to
 * delete the dead paths of every closure eris dropped for this cache.
 */
import { openClosureDb } from '../store/closure-db.ts';
import { storeDbPath } from '../store/store.ts';
import { markClosure } from './plan.ts';
import { dbGraph, deleteDead, dropRoots, planSweep, type DeleteResult, type NixStoreRun, type SweepReport, type SweepTarget } from './sweep.ts';
import { openJournal, RETENTION_FILE } from './journal.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface GcOptions {
  target: SweepTarget;
  /** Where retention.sqlite is kept (dropped roots for a later --delete); none: only this run's drops. */
  stateDir?: string;
  dryRun: boolean;
  delete: boolean;
  run: NixStoreRun;
  now?: number;
}

export interface GcOutcome {
  report: SweepReport;
  /** Links removed (none in a dry run). */
  removed: string[];
  /** Paths `--delete` may ask Nix about: the valid paths of the dropped closures. */
  candidates: string[];
  deleted?: DeleteResult;
}

/** Valid paths in the closures of these store paths. */
function closureOf(storeRoot: string, storePaths: readonly string[]): string[] {
  const db = openClosureDb(storeDbPath(storeRoot));
  try {
    const g = dbGraph(db, new Map());
    const marked = new Set<number>();
    for (const p of storePaths) {
      const id = g.idOf(p);
      if (id !== undefined) markClosure(g, marked, id);
    }
    return [...marked].map((id) => g.pathOf(id)).sort();
  } finally {
    db.close();
  }
}

export async function runGc(o: GcOptions): Promise<GcOutcome> {
  const now = o.now ?? Date.now();
  const report = await planSweep(o.target, now);
  const cache = o.target.cache.name;
  // A dry run creates nothing: it reads the journal only if there is one.
  const journal = o.stateDir === undefined || (o.dryRun && !existsSync(join(o.stateDir, RETENTION_FILE))) ? undefined : openJournal(o.stateDir);
  try {
    const removed = o.dryRun ? [] : dropRoots(report);
    const removedSet = new Set(removed);
    const droppedNow = report.plan.dropped.filter((d) => removedSet.has(d.source)).map((d) => d.storePath);
    if (!o.dryRun && droppedNow.length) journal?.dropped(cache, droppedNow, now);
    const roots = [...new Set([...(journal?.droppedPaths(cache) ?? []), ...(o.dryRun ? report.plan.dropped.map((d) => d.storePath) : droppedNow)])];
    const candidates = closureOf(o.target.storeRoot, roots);
    if (!o.delete || o.dryRun) return { report, removed, candidates };
    const deleted = await deleteDead(candidates, o.run);
    // Roots whose path is gone need no more remembering.
    const stillValid = new Set(closureOf(o.target.storeRoot, roots));
    journal?.forget(cache, roots.filter((p) => !stillValid.has(p)));
    return { report, removed, candidates, deleted };
  } finally {
    journal?.close();
  }
}
