/**
 * A worker thread that computes published sets on its own DB connection, so a
 * large closure walk never holds up the origin's event loop (narinfo keeps its
 * latency while a 50 000-path set is recomputed; see bench/published-sets.ts).
 * The main thread sends { id, publish, roots, exclude } and gets the set back
 * flattened (hash parts joined by newlines: one string to copy, not 50 000).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openClosureDb } from '../store/closure-db.ts';
import { computePublished } from './published.ts';
import type { WorkerRequest, WorkerReply } from './worker-compute.ts';

const db = openClosureDb((workerData as { dbPath: string }).dbPath);
parentPort!.on('message', async (m: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    // No slicing here: this thread serves nobody else.
    const set = await computePublished(db, { publish: m.publish, roots: m.roots, exclude: m.exclude, sliceMs: Number.POSITIVE_INFINITY });
    reply = {
      id: m.id,
      ok: true,
      set: {
        kind: set.kind,
        members: [...set.members].join('\n'),
        excludedHashes: [...set.excludedHashes].join('\n'),
        derivers: [...set.derivers].join('\n'),
        excludedDerivers: [...set.excludedDerivers].join('\n'),
        exclusions: set.exclusions,
        narBytes: set.narBytes,
        roots: set.roots,
        computedAt: set.computedAt,
        computeMs: set.computeMs,
      },
    };
  } catch (e) {
    reply = { id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort!.postMessage(reply);
});
