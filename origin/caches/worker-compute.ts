/** The main thread's side of compute-worker.ts: one worker per origin process, one computation at a time. */
import { Worker } from 'node:worker_threads';
import type { ComputeOptions, Exclusion, PublishedSet } from './published.ts';
import type { ResolvedRoot } from './roots.ts';

export interface WorkerRequest {
  id: number;
  publish: 'all' | 'roots';
  roots: ResolvedRoot[];
  exclude: readonly string[];
}

export type WorkerReply =
  | { id: number; ok: true; set: { kind: 'all' | 'set'; members: string; excludedHashes: string; derivers: string; excludedDerivers: string; exclusions: Exclusion[]; narBytes: number; roots: ResolvedRoot[]; computedAt: number; computeMs: number } }
  | { id: number; ok: false; error: string };

export interface WorkerCompute {
  compute(o: ComputeOptions): Promise<PublishedSet>;
  close(): void;
}

const split = (s: string) => new Set(s ? s.split('\n') : []);

export function startComputeWorker(dbPath: string): WorkerCompute {
  const worker = new Worker(new URL('./compute-worker.ts', import.meta.url), { workerData: { dbPath } });
  worker.unref();
  let next = 0;
  const waiting = new Map<number, { resolve: (s: PublishedSet) => void; reject: (e: Error) => void }>();
  const failAll = (e: Error) => {
    for (const w of waiting.values()) w.reject(e);
    waiting.clear();
  };
  worker.on('message', (r: WorkerReply) => {
    const w = waiting.get(r.id);
    if (!w) return;
    waiting.delete(r.id);
    if (!r.ok) return w.reject(new Error(r.error));
    const s = r.set;
    w.resolve({ ...s, members: split(s.members), excludedHashes: split(s.excludedHashes), derivers: split(s.derivers), excludedDerivers: split(s.excludedDerivers) });
  });
  worker.on('error', (e) => failAll(e));
  worker.on('exit', (code) => failAll(new Error(`the published-set worker exited (code ${code})`)));
  return {
    compute(o) {
      const id = ++next;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.postMessage({ id, publish: o.publish, roots: o.roots, exclude: o.exclude } satisfies WorkerRequest);
      });
    },
    close() {
      void worker.terminate();
    },
  };
}
