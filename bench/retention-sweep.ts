/**
 * What a retention sweep costs on a cache with 10 000 roots (issue 21): the
 * time to plan it (read every link, walk the closures in the store DB, read
 * the fetch history, decide, estimate what the store can free) and to drop the
 * chosen links, and the memory it takes — against reading the same links and
 * walking the same closures without deciding anything, in the same run.
 * Each measurement is a process of its own (as the origin's sweep is a worker
 * thread of its own), alternating plan and reference runs; memory is the
 * process's peak RSS minus that of a process that only loads the same modules.
 *
 *   npm run bench:retention [-- --roots 10000 --runs 5]
 *
 * The store is synthetic (test/helpers/synthetic-db.ts: Nix's schema, no
 * files): a pool of shared dependencies (each referring to a few earlier ones)
 * and, per root, a chain of three private paths referring to five shared ones —
 * the shape of a CI cache where every commit pushes its outputs. Roots were
 * pushed over the last 60 days; a fifth of them had a path fetched lately.
 */
import { lutimesSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { addFakePaths, fakeStorePath, type FakePath } from '../test/helpers/synthetic-db.ts';
import { openClosureDb } from '../origin/store/closure-db.ts';
import { UsageDb } from '../origin/usage/db.ts';
import { DAY_MS, markClosure } from '../origin/retention/plan.ts';
import { dbGraph, dropRoots, planSweep, retentionRoots, type SweepTarget } from '../origin/retention/sweep.ts';
import { lastFetches } from '../origin/retention/last-use.ts';

const { values } = parseArgs({ options: { roots: { type: 'string', default: '10000' }, runs: { type: 'string', default: '5' }, child: { type: 'string' }, dir: { type: 'string' }, 'max-bytes': { type: 'string' } } });
const ROOTS = Number(values.roots);
const RUNS = Number(values.runs);
const SHARED = ROOTS;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;
const NOW = Date.parse('2026-12-01T12:00:00Z');

interface ChildResult {
  ms: number;
  maxRss: number;
  dropped?: number;
  freeable?: number;
}

const cacheOf = (maxBytes: number) => ({ name: 'bench', publish: 'roots' as const, roots: [], keepDays: 30, maxBytes });
const targetOf = (dir: string, maxBytes: number): SweepTarget => {
  const cache = cacheOf(maxBytes);
  return { storeRoot: join(dir, 'root'), storeDir: '/nix/store', cache, caches: [cache], lastFetches: lastFetches(join(dir, 'state'), 'bench') };
};

/** One measurement in this (child) process. */
async function child(kind: string, dir: string, maxBytes: number): Promise<ChildResult> {
  const root = join(dir, 'root');
  const t = performance.now();
  if (kind === 'plan') {
    const report = await planSweep(targetOf(dir, maxBytes), NOW);
    return { ms: performance.now() - t, maxRss: process.resourceUsage().maxRSS * 1024, dropped: report.plan.dropped.length, freeable: report.freeable.bytes };
  }
  if (kind === 'walk') {
    const roots = retentionRoots(root, '/nix/store', cacheOf(maxBytes));
    const db = openClosureDb(join(root, 'nix/var/nix/db/db.sqlite'));
    const g = dbGraph(db, new Map());
    const marked = new Set<number>();
    for (const r of roots) markClosure(g, marked, g.idOf(r.storePath)!);
    db.close();
    return { ms: performance.now() - t, maxRss: process.resourceUsage().maxRSS * 1024 };
  }
  return { ms: 0, maxRss: process.resourceUsage().maxRSS * 1024 };
}

if (values.child) {
  process.stdout.write(JSON.stringify(await child(values.child, values.dir!, Number(values['max-bytes']))) + '\n');
  process.exit(0);
}

let seed = 7;
const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
const self = fileURLToPath(import.meta.url);
const run = (kind: string, dir: string, maxBytes: number): ChildResult =>
  JSON.parse(execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', self, '--child', kind, '--dir', dir, '--max-bytes', String(maxBytes)], { encoding: 'utf8' }));

const dir = mkdtempSync(join(tmpdir(), 'eris-bench-retention-'));
try {
  const root = join(dir, 'root');
  mkdirSync(join(root, 'nix/var/nix/db'), { recursive: true });
  const paths: FakePath[] = [];
  for (let i = 0; i < SHARED; i++) {
    const refs = new Set<string>();
    for (let k = 0; k < Math.min(i, 3); k++) refs.add(`dep-${rand(i)}`);
    paths.push({ name: `dep-${i}`, refs: [...refs], narSize: 50_000 + rand(2_000_000) });
  }
  for (let r = 0; r < ROOTS; r++) {
    const shared = Array.from({ length: 5 }, () => `dep-${rand(SHARED)}`);
    paths.push({ name: `out-${r}-c`, refs: [...new Set(shared)], narSize: 10_000 + rand(5_000_000) });
    paths.push({ name: `out-${r}-b`, refs: [`out-${r}-c`], narSize: 10_000 + rand(500_000) });
    paths.push({ name: `out-${r}`, refs: [`out-${r}-b`, `dep-${rand(SHARED)}`], narSize: 10_000 + rand(500_000) });
  }
  let t = performance.now();
  addFakePaths(join(root, 'nix/var/nix/db/db.sqlite'), paths);
  console.log(`store DB: ${paths.length} paths in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const links = join(root, 'nix/var/nix/gcroots/eris/bench');
  mkdirSync(links, { recursive: true });
  const stateDir = join(dir, 'state');
  const usage = UsageDb.open(stateDir);
  const fetched = [];
  for (let r = 0; r < ROOTS; r++) {
    const p = fakeStorePath(`out-${r}`);
    const link = join(links, p.slice('/nix/store/'.length));
    symlinkSync(p, link);
    const when = new Date(NOW - rand(60) * DAY_MS - rand(DAY_MS));
    lutimesSync(link, when, when);
    if (rand(5) === 0) {
      const day = new Date(NOW - rand(20) * DAY_MS).toISOString().slice(0, 10);
      fetched.push({ day, user: 'ci', token: '', cache: 'bench', path: fakeStorePath(`out-${r}-${rand(2) ? 'b' : 'c'}`), nars: 1, bytes: 1 });
    }
  }
  usage.add([], fetched);
  usage.close();

  // Total closure bytes, for a max_bytes that drops some of what keep_days keeps.
  const cdb = openClosureDb(join(root, 'nix/var/nix/db/db.sqlite'));
  const g = dbGraph(cdb, new Map());
  const all = new Set<number>();
  let total = 0;
  for (let r = 0; r < ROOTS; r++) total += markClosure(g, all, g.idOf(fakeStorePath(`out-${r}`))!);
  cdb.close();
  const maxBytes = Math.floor(total * 0.4);
  console.log(`${ROOTS} roots, ${all.size} paths in their closures, ${mb(total)}; keep_days 30, max_bytes ${mb(maxBytes)}; ${fetched.length} fetch rows`);

  // Alternating: reference (links + closure walk, nothing decided), plan, and a process that only loads the modules.
  const walk: ChildResult[] = [];
  const plan: ChildResult[] = [];
  const idle: ChildResult[] = [];
  for (let i = 0; i < RUNS; i++) {
    walk.push(run('walk', dir, maxBytes));
    plan.push(run('plan', dir, maxBytes));
    idle.push(run('idle', dir, maxBytes));
  }
  const planMs = median(plan.map((r) => r.ms));
  const walkMs = median(walk.map((r) => r.ms));
  const idleRss = median(idle.map((r) => r.maxRss));

  const report = await planSweep(targetOf(dir, maxBytes), NOW);
  t = performance.now();
  const removed = dropRoots(report);
  const dropMs = performance.now() - t;

  console.log(`plan (median of ${RUNS}): ${(planMs / 1000).toFixed(2)} s  (${plan.map((x) => (x.ms / 1000).toFixed(2)).join(', ')})`);
  console.log(`reference, links + closure walk only: ${(walkMs / 1000).toFixed(2)} s; plan / walk = ${(planMs / walkMs).toFixed(2)}`);
  console.log(`drops ${plan[0]!.dropped} roots (the store can free ${mb(plan[0]!.freeable!)}); unlinking ${removed.length} took ${dropMs.toFixed(0)} ms`);
  console.log(`peak RSS: plan ${mb(median(plan.map((r) => r.maxRss)))}, walk ${mb(median(walk.map((r) => r.maxRss)))}, modules only ${mb(idleRss)}; the plan adds ${mb(median(plan.map((r) => r.maxRss)) - idleRss)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
