/**
 * What a cache's published set costs on a 50 000-path closure (issue 10):
 * the time to compute it, the memory it holds, and what narinfo requests see
 * while it is recomputed — against the same requests on an idle origin,
 * measured in the same run.
 *
 *   node --expose-gc --disable-warning=ExperimentalWarning bench/published-sets.ts [--paths 50000] [--requests 2000]
 *
 * The store DB is a copy of this machine's /nix/var/nix/db/db.sqlite (when
 * there is one) with N synthetic ValidPaths and Refs rows added (path i refers
 * to path i-1 and up to 5 other earlier paths, so the closure of the last one
 * is all N); no store files are needed, as narinfo reads only the DB.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import { addFakePaths, fakeStorePath, type FakePath } from '../test/helpers/synthetic-db.ts';
import { openClosureDb } from '../origin/store/closure-db.ts';
import { computePublished } from '../origin/caches/published.ts';
import { startComputeWorker } from '../origin/caches/worker-compute.ts';
import { composeOrigin } from '../origin/server/compose.ts';
import { listen } from '../origin/server/listen.ts';
import { resolveConfig } from '../origin/config/index.ts';
import { createSigner, generateKeyPair } from '../shared/signing.ts';

const { values } = parseArgs({ options: { paths: { type: 'string', default: '50000' }, requests: { type: 'string', default: '2000' }, runs: { type: 'string', default: '5' } } });
const N = Number(values.paths);
const REQUESTS = Number(values.requests);
const RUNS = Number(values.runs);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

function buildStore(dir: string): { root: string; top: string; names: string[] } {
  const root = join(dir, 'root');
  mkdirSync(join(root, 'nix/store'), { recursive: true });
  mkdirSync(join(root, 'nix/var/nix/db'), { recursive: true });
  const db = join(root, 'nix/var/nix/db/db.sqlite');
  if (existsSync('/nix/var/nix/db/db.sqlite')) {
    // A consistent copy of the real DB (it may be in use): VACUUM INTO.
    const src = new DatabaseSync('/nix/var/nix/db/db.sqlite', { readOnly: true });
    src.exec(`VACUUM INTO '${db.replace(/'/g, "''")}'`);
    src.close();
  }
  let seed = 42;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const paths: FakePath[] = [];
  for (let i = 0; i < N; i++) {
    const refs = new Set<string>();
    if (i > 0) refs.add(`bench-${i - 1}`);
    for (let k = 0; k < Math.min(i, 5); k++) refs.add(`bench-${rand(i)}`);
    paths.push({ name: `bench-${i}`, refs: [...refs], narSize: 4096 + rand(100_000), deriver: `bench-${i}.drv` });
  }
  addFakePaths(db, paths);
  return { root, top: fakeStorePath(`bench-${N - 1}`), names: paths.map((p) => p.name) };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const median = (xs: number[]) => pct(xs, 50);

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'eris-bench-published-'));
  try {
    const t0 = performance.now();
    const { root, top, names } = buildStore(dir);
    const dbPath = join(root, 'nix/var/nix/db/db.sqlite');
    const refRows = (new DatabaseSync(dbPath, { readOnly: true }).prepare('SELECT COUNT(*) AS n FROM Refs').get() as { n: number }).n;
    console.log(`store: ${N} synthetic paths (+ the real DB's rows), ${refRows} Refs rows; built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // 1. Compute time (in the worker thread, as the origin does it) and the memory the set holds in the origin's heap.
    const worker = startComputeWorker(dbPath);
    const cdb = openClosureDb(dbPath);
    const roots = [{ source: top, storePath: top }];
    const times: number[] = [];
    const walls: number[] = [];
    const excludeTimes: number[] = [];
    const inThread: number[] = [];
    let size = 0;
    for (let r = 0; r < RUNS; r++) {
      const t = performance.now();
      const set = await worker.compute({ publish: 'roots', roots, exclude: [] });
      walls.push(performance.now() - t);
      times.push(set.computeMs);
      size = set.members.size;
      const ex = await worker.compute({ publish: 'roots', roots, exclude: [`bench-${Math.floor(N / 2)}`] });
      excludeTimes.push(ex.computeMs);
      if (r === 0) console.log(`  with exclude = ["bench-${Math.floor(N / 2)}"]: ${ex.members.size} published, ${ex.exclusions.length} excluded`);
    }
    // The same walk on the main thread, for reference (what the worker keeps off the event loop).
    for (let r = 0; r < Math.min(RUNS, 3); r++) inThread.push((await computePublished(cdb, { publish: 'roots', roots, exclude: [] })).computeMs);
    console.log(`compute: closure of ${size} paths, median ${median(times).toFixed(0)} ms in the worker (runs: ${times.map((t) => t.toFixed(0)).join(', ')}), ` +
      `${median(walls).toFixed(0)} ms until the set is usable; with an exclusion ${median(excludeTimes).toFixed(0)} ms; on the main thread ${median(inThread).toFixed(0)} ms`);
    // Heap held per set: hold four, compare with holding none (after full collections), divide.
    const settle = () => {
      for (let i = 0; i < 3; i++) gc();
      return process.memoryUsage().heapUsed;
    };
    const before = settle();
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await worker.compute({ publish: 'roots', roots, exclude: [] }));
    const heldBytes = (settle() - before) / held.length;
    console.log(`memory:  the set of ${held[0]!.members.size} paths holds ${(heldBytes / 1024 ** 2).toFixed(1)} MiB of the origin's heap (${(heldBytes / size).toFixed(0)} bytes per path); ` +
      `RSS ${(process.memoryUsage().rss / 1024 ** 2).toFixed(0)} MB`);

    // 2. narinfo latency: idle origin vs while the set is recomputed back to back (same process, same event loop).
    const kp = generateKeyPair('bench-1');
    const config = resolveConfig({
      file: { storeRoot: root, edgeSecret: 'bench-edge-secret-0123456789', caches: [{ name: 'big', roots: [top], sign_key_paths: ['(bench)'] }] },
      env: {},
    });
    const origin = composeOrigin(config, { signers: [createSigner(kp.secret)] });
    await origin.ready;
    const server = await listen(origin.app.fetch, { host: '127.0.0.1', port: 0 });
    const headers = { 'x-eris-edge-secret': 'bench-edge-secret-0123456789' };
    const hashes = names.map((n) => fakeStorePath(n).slice(11, 43));
    const latencies = async (): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < REQUESTS; i++) {
        const t = performance.now();
        const res = await fetch(`${server.url}/big/${hashes[(i * 7919) % hashes.length]}.narinfo`, { headers });
        await res.text();
        if (res.status !== 200) throw new Error(`narinfo answered ${res.status}`);
        out.push(performance.now() - t);
      }
      return out;
    };
    await latencies(); // warm up (path info and signature caches, connections)
    const idle = await latencies();
    let recomputing = true;
    let recomputes = 0;
    // Back-to-back recomputations as the publisher runs them (worker thread, set rebuilt on this thread).
    const loop = (async () => {
      while (recomputing) {
        await worker.compute({ publish: 'roots', roots, exclude: [] });
        recomputes++;
      }
    })();
    const busy = await latencies();
    recomputing = false;
    await loop;
    const fmt = (xs: number[]) => `p50 ${median(xs).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
    console.log(`narinfo, idle:        ${fmt(idle)}`);
    console.log(`narinfo, recomputing: ${fmt(busy)}  (${recomputes} recomputations during ${REQUESTS} requests)`);
    console.log(`ratio recomputing/idle: p50 ${(median(busy) / median(idle)).toFixed(2)}x, p99 ${(pct(busy, 99) / pct(idle, 99)).toFixed(2)}x`);
    await server.close();
    origin.close();
    cdb.close();
    worker.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
