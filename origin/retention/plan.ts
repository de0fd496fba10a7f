/**
 * Which of a cache's roots retention keeps: pure, over a closure graph given as
 * functions, so the sweep (DB, usage, links) and the tests share it.
 *
 * A root's last use is the latest of: when it was pushed or published (its
 * link's time) and when any path of its closure was last fetched from the
 * cache. Max over a closure composes over the reference DAG, so one memoised
 * walk gives every root's last use in O(paths + references), however many
 * roots share the paths.
 *
 * Rules, in order: config roots and pins are always kept; a root unused for
 * more than `keepDays` goes; then, most recently used first, roots are kept
 * while the union of the kept closures (each path counted once, protected
 * roots' closures first) stays within `maxBytes` — the first root that would
 * cross it and every root used less recently go (least recently used first).
 */

export const DAY_MS = 86_400_000;

export interface RetentionPolicy {
  /** Keep a root used (pushed, published or any closure path fetched) within this many days. */
  keepDays?: number;
  /** Keep the union of the cache's closures within this many NAR bytes. */
  maxBytes?: number;
}

/** `pushed`: a link in gcroots/eris/<cache>/ (push or `eris publish`); `pin`: a revision of a pin; `config`: the config's `roots`. */
export type RootKind = 'pushed' | 'pin' | 'config';

export interface RetentionRoot {
  /** The link (or config entry) that holds it, as a path under the store root (`/nix/var/nix/gcroots/eris/ci/…`). */
  source: string;
  /** The link's real path (pushed roots and pins), which a drop removes. */
  link?: string;
  storePath: string;
  kind: RootKind;
  /** The pin's name (kind `pin`). */
  pin?: string;
  /** When it was pushed, published or pinned (the link's mtime), ms since the epoch. */
  since: number;
}

/** The store's reference graph and fetch times, by the DB's path ids. */
export interface RetentionGraph {
  /** The id of a valid path, undefined when it is not valid. */
  idOf(storePath: string): number | undefined;
  references(id: number): readonly number[];
  narSize(id: number): number;
  /** When the path was last fetched from this cache (ms), 0 when never (in the usage kept). */
  lastFetch(id: number): number;
}

export interface RootDecision extends RetentionRoot {
  keep: boolean;
  /** Latest use, ms (0 for a root whose path is no longer valid). */
  lastUse: number;
  /** Why it is kept or dropped, in a few words. */
  why: string;
}

export interface RetentionPlan {
  decisions: RootDecision[];
  dropped: RootDecision[];
  /** NAR bytes of the union of the kept closures (shared paths once). */
  keptBytes: number;
  /** Set when protected roots alone exceed maxBytes. */
  overBudget?: string;
}

/** Iterative post-order walk: max(lastFetch) over each closure, memoised across calls. */
function closureLastFetch(g: RetentionGraph, memo: Map<number, number>, start: number): number {
  const known = memo.get(start);
  if (known !== undefined) return known;
  const stack: { id: number; refs: readonly number[]; i: number; best: number }[] = [];
  const enter = (id: number) => {
    memo.set(id, -1); // in progress: a (self-)cycle contributes nothing
    stack.push({ id, refs: g.references(id), i: 0, best: g.lastFetch(id) });
  };
  enter(start);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    if (top.i < top.refs.length) {
      const r = top.refs[top.i++]!;
      const m = memo.get(r);
      if (m === undefined) enter(r);
      else if (m > top.best) top.best = m;
      continue;
    }
    stack.pop();
    memo.set(top.id, top.best);
    const parent = stack[stack.length - 1];
    if (parent && top.best > parent.best) parent.best = top.best;
  }
  return memo.get(start)!;
}

/** Marks the closure of `start` into `marked`; returns the NAR bytes newly marked. */
export function markClosure(g: RetentionGraph, marked: Set<number>, start: number, onNew?: (id: number) => void): number {
  if (marked.has(start)) return 0;
  let bytes = 0;
  const stack = [start];
  marked.add(start);
  while (stack.length) {
    const id = stack.pop()!;
    bytes += g.narSize(id);
    onNew?.(id);
    for (const r of g.references(id)) {
      if (!marked.has(r)) {
        marked.add(r);
        stack.push(r);
      }
    }
  }
  return bytes;
}

const days = (ms: number) => Math.floor(ms / DAY_MS);

export function planRetention(roots: readonly RetentionRoot[], g: RetentionGraph, policy: RetentionPolicy, now: number): RetentionPlan {
  const memo = new Map<number, number>();
  const entries = roots.map((r) => {
    const id = g.idOf(r.storePath);
    const lastUse = id === undefined ? 0 : Math.max(r.since, closureLastFetch(g, memo, id));
    return { r, id, lastUse, decision: undefined as RootDecision | undefined };
  });
  const decide = (e: (typeof entries)[number], keep: boolean, why: string) => (e.decision = { ...e.r, keep, lastUse: e.lastUse, why });

  const marked = new Set<number>();
  let keptBytes = 0;
  for (const e of entries) {
    if (e.r.kind === 'pushed') continue;
    decide(e, true, e.r.kind === 'config' ? 'in the config\'s roots' : `pinned as ${e.r.pin}`);
    if (e.id !== undefined) keptBytes += markClosure(g, marked, e.id);
  }
  let overBudget: string | undefined;
  if (policy.maxBytes !== undefined && keptBytes > policy.maxBytes) {
    overBudget = `config roots and pins alone hold ${keptBytes} bytes, over max_bytes = ${policy.maxBytes}`;
  }

  // Candidates, most recently used first (ties: newer link first, then by path for a stable order).
  const candidates = entries.filter((e) => e.r.kind === 'pushed').sort((a, b) => b.lastUse - a.lastUse || b.r.since - a.r.since || (a.r.source < b.r.source ? -1 : 1));
  let full = overBudget !== undefined;
  for (const e of candidates) {
    if (e.id === undefined) {
      decide(e, false, 'its path is no longer valid');
      continue;
    }
    const age = now - e.lastUse;
    if (policy.keepDays !== undefined && age > policy.keepDays * DAY_MS) {
      decide(e, false, `unused for ${days(age)} days (keep_days = ${policy.keepDays})`);
      continue;
    }
    if (policy.maxBytes !== undefined) {
      if (full) {
        decide(e, false, `over max_bytes (less recently used than what is kept)`);
        continue;
      }
      // Try it: the bytes its closure adds beyond what is kept already.
      const added: number[] = [];
      const more = markClosure(g, marked, e.id, (id) => added.push(id));
      if (keptBytes + more > policy.maxBytes) {
        for (const id of added) marked.delete(id);
        full = true;
        decide(e, false, `over max_bytes (would make ${keptBytes + more} bytes)`);
        continue;
      }
      keptBytes += more;
    } else keptBytes += markClosure(g, marked, e.id);
    decide(e, true, age < DAY_MS ? 'used today' : `used ${days(age)} day${days(age) === 1 ? '' : 's'} ago`);
  }
  const decisions = entries.map((e) => e.decision!);
  return { decisions, dropped: decisions.filter((d) => !d.keep), keptBytes, overBudget };
}

/**
 * The paths that dropping would leave unreachable from every root in `live`
 * (the kept roots of every cache and the store's other GC roots as eris can see
 * them): what `eris gc` says the store can free. Nix decides in the end (it
 * also counts temporary and runtime roots).
 */
export function freeable(g: RetentionGraph, droppedIds: readonly number[], liveIds: Iterable<number>): { ids: number[]; bytes: number } {
  const live = new Set<number>();
  for (const id of liveIds) markClosure(g, live, id);
  const seen = new Set<number>();
  const ids: number[] = [];
  let bytes = 0;
  for (const d of droppedIds) {
    if (live.has(d) || seen.has(d)) continue;
    const stack = [d];
    seen.add(d);
    while (stack.length) {
      const id = stack.pop()!;
      ids.push(id);
      bytes += g.narSize(id);
      for (const r of g.references(id)) {
        if (!live.has(r) && !seen.has(r)) {
          seen.add(r);
          stack.push(r);
        }
      }
    }
  }
  return { ids, bytes };
}
