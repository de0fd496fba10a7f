/**
 * One retention sweep in a worker thread (a 10 000-root sweep walks the store
 * DB for about a second: never on the origin's event loop). workerData is a
 * SweepJob; the reply is a SweepSummary or { error }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runGc } from './gc.ts';
import { lastFetches } from './last-use.ts';
import { nixStoreRunner, type SweptCache } from './sweep.ts';

export interface SweepJob {
  storeRoot: string;
  storeDir: string;
  stateDir?: string;
  cache: SweptCache;
  caches: SweptCache[];
}

export interface SweepSummary {
  dropped: string[];
  kept: number;
  keptBytes: number;
  freeableBytes: number;
  overBudget?: string;
}

const job = workerData as SweepJob;
try {
  const outcome = await runGc({
    target: { storeRoot: job.storeRoot, storeDir: job.storeDir, cache: job.cache, caches: job.caches, lastFetches: lastFetches(job.stateDir, job.cache.name) },
    stateDir: job.stateDir,
    dryRun: false,
    delete: false,
    run: nixStoreRunner(job.storeRoot),
  });
  const p = outcome.report.plan;
  parentPort!.postMessage({
    dropped: outcome.removed,
    kept: p.decisions.length - p.dropped.length,
    keptBytes: p.keptBytes,
    freeableBytes: outcome.report.freeable.bytes,
    overBudget: p.overBudget,
  } satisfies SweepSummary);
} catch (e) {
  parentPort!.postMessage({ error: e instanceof Error ? e.message : String(e) });
}
