/**
 * The origin's own sweeps: daily for every cache with keep_days or max_bytes
 * (with several workers, whichever claims the day in retention.sqlite), and a
 * few seconds after pushes into a cache with max_bytes (so a push that crossed
 * it makes room at once, dropping least recently used roots — never the new
 * one, which is the most recent). One sweep at a time per process, each in a
 * worker thread; dropped roots are logged.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../server/log.ts';
import { openJournal } from './journal.ts';
import { DAY_MS } from './plan.ts';
import type { SweepJob, SweepSummary } from './sweep-worker.ts';
import type { SweptCache } from './sweep.ts';

export interface RetentionScheduler {
  /** A push into `cache` was accepted. */
  afterPush(cache: string): void;
  /** Sweeps one cache now (tests); resolves with what it dropped. */
  sweep(cache: string): Promise<SweepSummary>;
  close(): void;
}

export interface SchedulerOptions {
  storeRoot: string;
  storeDir: string;
  stateDir?: string;
  caches: readonly SweptCache[];
  log: Logger;
  /** How often to look whether a daily sweep is due (default hourly; the first look a minute after start). */
  checkEveryMs?: number;
  sweepEveryMs?: number;
  /** Pushes arrive in bursts (a closure): sweep this long after the last one. */
  afterPushDelayMs?: number;
}

const hasPolicy = (c: SweptCache) => c.keepDays !== undefined || c.maxBytes !== undefined;

export function startRetention(o: SchedulerOptions): RetentionScheduler {
  const governed = o.caches.filter(hasPolicy);
  const timers = new Set<NodeJS.Timeout>();
  const pushTimers = new Map<string, NodeJS.Timeout>();
  let chain: Promise<unknown> = Promise.resolve();
  let closed = false;

  const runOne = (cache: SweptCache): Promise<SweepSummary> => {
    const job: SweepJob = { storeRoot: o.storeRoot, storeDir: o.storeDir, stateDir: o.stateDir, cache, caches: [...o.caches] };
    const run = chain.then(
      () =>
        new Promise<SweepSummary>((resolve, reject) => {
          const w = new Worker(new URL('./sweep-worker.ts', import.meta.url), { workerData: job });
          w.once('message', (m: SweepSummary | { error: string }) => ('error' in m ? reject(new Error(m.error)) : resolve(m)));
          w.once('error', reject);
          w.once('exit', (code) => reject(new Error(`retention sweep worker exited (code ${code})`)));
        }),
    );
    chain = run.catch(() => {});
    return run.then(
      (s) => {
        o.log.info({ msg: 'retention sweep', cache: cache.name, dropped: s.dropped.length, kept: s.kept, keptBytes: s.keptBytes, freeableBytes: s.freeableBytes, ...(s.overBudget ? { warning: s.overBudget } : {}) });
        return s;
      },
      (e: Error) => {
        o.log.error({ msg: 'retention sweep failed', cache: cache.name, error: e.message });
        throw e;
      },
    );
  };

  const daily = () => {
    if (closed || o.stateDir === undefined) return;
    let journal;
    try {
      journal = openJournal(o.stateDir);
      for (const c of governed) if (journal.claimSweep(c.name, Date.now(), o.sweepEveryMs ?? DAY_MS)) void runOne(c).catch(() => {});
    } catch (e) {
      o.log.error({ msg: 'retention: cannot read retention.sqlite', error: (e as Error).message });
    } finally {
      journal?.close();
    }
  };
  if (governed.length) {
    const first = setTimeout(daily, Math.min(60_000, o.checkEveryMs ?? 60_000));
    const every = setInterval(daily, o.checkEveryMs ?? 3_600_000);
    first.unref();
    every.unref();
    timers.add(first).add(every);
  }

  return {
    afterPush(name) {
      const cache = governed.find((c) => c.name === name);
      if (!cache || cache.maxBytes === undefined || closed) return;
      clearTimeout(pushTimers.get(name));
      const t = setTimeout(() => {
        pushTimers.delete(name);
        void runOne(cache).catch(() => {});
      }, o.afterPushDelayMs ?? 5000);
      t.unref();
      pushTimers.set(name, t);
    },
    sweep(name) {
      const cache = o.caches.find((c) => c.name === name);
      if (!cache) return Promise.reject(new Error(`no cache ${name}`));
      return runOne(cache);
    },
    close() {
      closed = true;
      for (const t of [...timers, ...pushTimers.values()]) clearTimeout(t);
    },
  };
}
