/**
 * Usage accounting off the hot path: a request adds to an in-memory aggregate
 * (a Map lookup and a few additions); once a second the aggregate is written
 * to usage.sqlite in one transaction of additive UPSERTs. Each origin worker
 * flushes its own aggregate, so workers never double-count and never lose each
 * other's figures. A flush that finds the file locked by another worker keeps
 * its figures for the next one; close() flushes what is left (waiting for the
 * lock). A crash loses at most the last second.
 *
 * The same events feed the per-cache counters of /metrics (no user label).
 */
import type { Logger } from '../server/log.ts';
import type { Metrics } from '../server/metrics.ts';
import { UsageDb, isBusy, zeroCounts, COUNTERS, type PathRow, type PushRow, type UsageCounts, type UsageRow } from './db.ts';

/**
 * `user` is who the edge authenticated ('' for anonymous requests), `token` the id of the token they
 * used (shared/contract.ts tokenId; '' when the edge sent none): usage is kept per both, so a token's
 * history stays after it is revoked and `eris usage --token ID` answers what it did.
 */
export interface Usage {
  narinfo(user: string, cache: string, hit: boolean, token?: string): void;
  /** A NAR response ended (completely or not) after `bytes` body bytes. */
  nar(user: string, cache: string, storePath: string, bytes: number, token?: string): void;
  /** A pushed path accepted (its narinfo); with `path`, it is listed among the recent pushes. */
  pushed(user: string, cache: string, token?: string, path?: { storePath: string; narSize: number }): void;
  /** An accepted upload of a NAR file of `bytes` bytes. */
  received(user: string, cache: string, bytes: number, token?: string): void;
  /** Writes the aggregate now (tests, shutdown). */
  flush(): void;
  close(): void;
}

export interface UsageOptions {
  /** Where usage.sqlite lives; without it only the /metrics counters are kept. */
  stateDir?: string;
  retentionDays: number;
  metrics: Metrics;
  log: Logger;
  flushMs?: number;
  now?: () => number;
}

const DAY_MS = 86_400_000;
export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export function createUsage(o: UsageOptions): Usage {
  const now = o.now ?? Date.now;
  const { metrics, log } = o;
  const db = o.stateDir === undefined ? undefined : UsageDb.open(o.stateDir);
  let rows = new Map<string, UsageRow>();
  let paths = new Map<string, PathRow>();
  let pushes: PushRow[] = [];

  // The current UTC day, recomputed only when it ends.
  let day = '';
  let dayEnds = 0;
  const today = () => {
    const t = now();
    if (t >= dayEnds) {
      day = dayOf(t);
      dayEnds = (Math.floor(t / DAY_MS) + 1) * DAY_MS;
    }
    return day;
  };

  const row = (user: string, cache: string, token: string): UsageRow => {
    const d = today();
    const key = `${d}\0${user}\0${token}\0${cache}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { day: d, user, token, cache, ...zeroCounts() }));
    return r;
  };

  let pruned = '';
  const prune = () => {
    const firstKept = dayOf(now() - (o.retentionDays - 1) * DAY_MS);
    if (!db || pruned === firstKept) return;
    try {
      db.prune(firstKept);
      pruned = firstKept;
    } catch (e) {
      if (!isBusy(e)) log.error({ msg: 'usage: pruning old days failed', error: (e as Error).message });
    }
  };

  const flush = (waitMs?: number) => {
    if (!db || (!rows.size && !paths.size && !pushes.length)) return;
    const [r, p, q] = [rows, paths, pushes];
    rows = new Map();
    paths = new Map();
    pushes = [];
    try {
      db.add([...r.values()], [...p.values()], { waitMs, pushes: q });
    } catch (e) {
      if (isBusy(e)) {
        // Another worker is writing: keep the figures for the next flush.
        for (const [k, v] of r) {
          const cur = rows.get(k);
          if (!cur) rows.set(k, v);
          else for (const c of COUNTERS) cur[c] += v[c];
        }
        for (const [k, v] of p) {
          const cur = paths.get(k);
          if (!cur) paths.set(k, v);
          else [cur.nars, cur.bytes] = [cur.nars + v.nars, cur.bytes + v.bytes];
        }
        pushes = [...q, ...pushes];
        return;
      }
      log.error({ msg: 'usage: writing usage.sqlite failed; these figures are lost', error: (e as Error).message, rows: r.size });
    }
    prune();
  };

  let timer: NodeJS.Timeout | undefined;
  if (db) {
    prune();
    timer = setInterval(() => flush(), o.flushMs ?? 1000);
    timer.unref();
  }

  const add = (r: UsageCounts, k: keyof UsageCounts, n: number) => (r[k] += n);

  return {
    narinfo(user, cache, hit, token = '') {
      metrics.cacheRequest(cache, hit ? 'narinfo_hit' : 'narinfo_miss');
      if (db) add(row(user, cache, token), hit ? 'narinfoHits' : 'narinfoMisses', 1);
    },
    nar(user, cache, storePath, bytes, token = '') {
      metrics.cacheRequest(cache, 'nar');
      metrics.cacheBytes(cache, 'sent', bytes);
      if (!db) return;
      const r = row(user, cache, token);
      r.nars++;
      r.narBytesSent += bytes;
      const key = `${r.day}\0${user}\0${token}\0${cache}\0${storePath}`;
      const p = paths.get(key);
      if (p) {
        p.nars++;
        p.bytes += bytes;
      } else paths.set(key, { day: r.day, user, token, cache, path: storePath, nars: 1, bytes });
    },
    pushed(user, cache, token = '', path) {
      metrics.cacheRequest(cache, 'push');
      if (!db) return;
      row(user, cache, token).pushes++;
      if (path) pushes.push({ at: new Date(now()).toISOString(), user, token, cache, ...path });
    },
    received(user, cache, bytes, token = '') {
      metrics.cacheBytes(cache, 'received', bytes);
      if (db) row(user, cache, token).bytesReceived += bytes;
    },
    flush: () => flush(),
    close() {
      if (timer) clearInterval(timer);
      flush(5000);
      db?.close();
    },
  };
}
