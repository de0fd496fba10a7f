/**
 * eris benchmark (issues 4 and 12): nginx serving a static `file://` cache vs
 * the eris origin, and the eris edge vs a do-nothing Worker in front of the
 * same origin under `wrangler dev`, all on loopback, measured with wrk and
 * real `nix copy` in one run. See bench/README.md.
 *
 *   npx node --disable-warning=ExperimentalWarning bench/run.ts
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg, tmpdir, totalmem, release } from 'node:os';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { get as httpGetStream } from 'node:http';
import { benchConfig, BenchConfigError, type BenchConfig } from './lib/config.ts';
import { ensureFixture, hashPart, type Fixture } from './lib/fixture.ts';
import { freePort, killAllSync, sleep, stopAll, stopProcess, treeJiffies, withOtherCpu, type Started } from './lib/procs.ts';
import { narinfoPaceMs, runWrk, type WrkResult } from './lib/wrk.ts';
import { closureCopy, mergeCopyRuns, type CopyRun } from './lib/closure.ts';
import { measureEdgeCpu } from './lib/edge-cpu.ts';
import { addToken, httpGet, httpHead, keygen, PROJECT_DIR, startNginx, startOrigin, startPassthroughWorker, startWorker, waitOk, WRANGLER } from './lib/servers.ts';
import { summarizeProfile, type ProfileSummary } from './lib/profile.ts';
import { evaluateTargets, printReport, renderSvg, type Results, type TargetName, type Measurements } from './lib/report.ts';

const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Other work on the machine (a test suite, a build) skews every figure. Waits
 * up to maxWaitS for processes outside the benchmark to leave the CPUs mostly
 * idle; returns the share they used in the last second (%).
 */
async function waitQuiet(label: string, maxWaitS: number): Promise<number> {
  const deadline = Date.now() + maxWaitS * 1000;
  const probe = async () => (await withOtherCpu(() => sleep(1000))).otherCpuPct;
  let busy = await probe();
  if (busy > 10) say(`  waiting up to ${maxWaitS} s for other work on the machine (${busy.toFixed(0)}% CPU) to calm down …`);
  while (busy > 10 && Date.now() < deadline) busy = await probe();
  if (busy > 10) say(`  WARNING: other processes use ${busy.toFixed(0)}% of the CPUs before "${label}"; its figures will be low`);
  return busy;
}

/** wrk and nginx come from Debian packages; install them when we can, else say how. */
function ensureTools(c: BenchConfig) {
  for (const t of ['nix-build', 'nix', 'nix-store']) {
    if (!have(t)) throw new BenchConfigError(`${t} not found: the benchmark builds its store paths with real Nix (Debian: apt-get install nix-bin)`);
  }
  const missing = ['wrk', 'nginx'].filter((t) => !have(t));
  if (missing.length) {
    const pkgs = missing.map((t) => (t === 'nginx' ? 'nginx-light' : t));
    if (process.getuid?.() === 0 && have('apt-get')) {
      say(`installing ${pkgs.join(' ')} with apt-get …`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { env, stdio: 'inherit', timeout: 600_000 });
      if (install().status !== 0) {
        spawnSync('apt-get', ['update'], { env, stdio: 'inherit', timeout: 600_000 });
        install();
      }
    }
    const still = ['wrk', 'nginx'].filter((t) => !have(t));
    if (still.length) throw new BenchConfigError(`${still.join(' and ')} not found; install with: sudo apt-get install ${still.map((t) => (t === 'nginx' ? 'nginx-light' : t)).join(' ')}`);
  }
  if (!c.skipWorker && !existsSync(WRANGLER)) throw new BenchConfigError(`${WRANGLER} not found: run npm install (or set BENCH_SKIP_WORKER=1)`);
}

interface Target {
  name: TargetName;
  base: string;
  headers: Record<string, string>;
  narPath: string;
  /** The server's process (its tree is charged with the CPU time of each run). */
  proc?: Started;
  /** Where `nix copy` reaches this target (for nginx and the origin: through the header-adding proxy), and its netrc. */
  copyFrom?: string;
  netrc?: string;
}

/** The narinfo of `storePath` from a target: its NAR URL and hash (and a check that it is what we built). */
async function narinfo(t: { base: string; headers: Record<string, string> }, storePath: string) {
  const r = await httpGet(`${t.base}/${hashPart(storePath)}.narinfo`, t.headers, 15_000);
  if (!r || r.status !== 200) throw new Error(`${t.base}/${hashPart(storePath)}.narinfo answered ${r?.status ?? 'nothing'}: ${r?.body.slice(0, 200) ?? ''}`);
  const field = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(r.body)?.[1];
  if (field('StorePath') !== storePath) throw new Error(`${t.base}: narinfo for ${storePath} says StorePath ${field('StorePath')}`);
  return { url: field('URL') ?? '', narHash: field('NarHash') ?? '', narSize: Number(field('NarSize')) };
}

async function checkTargets(targets: Omit<Target, 'narPath'>[], fx: Fixture): Promise<Target[]> {
  const out: Target[] = [];
  const ref = await narinfo(targets[0]!, fx.large);
  for (const t of targets) {
    for (const p of [fx.small[0]!, fx.small[fx.small.length - 1]!]) await narinfo(t, p);
    const info = await narinfo(t, fx.large);
    if (info.narHash !== ref.narHash || info.narSize !== ref.narSize) throw new Error(`${t.name} and ${targets[0]!.name} disagree on the large path: ${info.narHash} ${info.narSize} vs ${ref.narHash} ${ref.narSize}`);
    const narPath = '/' + info.url;
    const head = await httpHead(t.base + narPath, t.headers, 30_000);
    if (head.status !== 200 || Number(head.headers.get('content-length')) !== info.narSize) {
      throw new Error(`${t.name}: GET ${narPath} answered ${head.status} with Content-Length ${head.headers.get('content-length')}, expected 200 and ${info.narSize}`);
    }
    out.push({ ...t, narPath });
  }
  return out;
}

interface Ctx {
  c: BenchConfig;
  work: string;
  wrkLog: string;
}

const JIFFY_US = 1e6 / 100; // USER_HZ is 100 on Linux

async function wrk(ctx: Ctx, label: string, t: { base: string; headers: Record<string, string>; proc?: Started }, paths: string[], threads: number, connections: number, timeoutSeconds: number, paceMs?: number): Promise<WrkResult> {
  const common = { base: t.base, paths, headers: t.headers, threads, connections, timeoutSeconds, workDir: ctx.work, logFile: ctx.wrkLog, cpus: ctx.c.wrkCpus, ...(paceMs ? { paceMs } : {}) };
  await waitQuiet(label, ctx.c.quietWaitSeconds);
  if (ctx.c.warmupSeconds > 0) await runWrk({ ...common, seconds: ctx.c.warmupSeconds, label: `${label} (warm-up)` });
  const cpu0 = t.proc ? treeJiffies(t.proc.pid) : 0;
  const { value: r, otherCpuPct } = await withOtherCpu(() => runWrk({ ...common, seconds: ctx.c.seconds, label }));
  if (t.proc && r.requests > 0) r.serverCpuUsPerReq = ((treeJiffies(t.proc.pid) - cpu0) * JIFFY_US) / r.requests;
  r.otherCpuPct = otherCpuPct;
  const other = r.otherCpuPct > 10 ? `, WARNING: other processes used ${r.otherCpuPct.toFixed(0)}% CPU` : '';
  say(`  ${label}: ${r.reqPerSec.toFixed(0)} req/s, ${r.mbPerSec.toFixed(1)} MB/s${r.serverCpuUsPerReq !== undefined ? `, ${r.serverCpuUsPerReq.toFixed(1)} µs server CPU/req` : ''}, p50 ${(r.latencyUs.p50 / 1000).toFixed(2)} ms, p99 ${(r.latencyUs.p99 / 1000).toFixed(2)} ms${r.totalErrors ? `, ${r.totalErrors} errors ${JSON.stringify(r.errors)}` : ''}${other}`);
  return r;
}

/** Downloads one NAR from the origin while sampling the origin's VmRSS (its largest process) every 100 ms. */
async function rssWhileStreaming(origin: Started, url: string, headers: Record<string, string>, size: number) {
  const rssOf = (pid: number | string) => {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  };
  // With --workers N the streaming happens in a child of the cluster primary: the largest process counts.
  const rssKb = () => {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${origin.pid}/task/${origin.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {}
    const all = [rssOf(origin.pid!), ...children.map(rssOf)].filter((v): v is number => v !== undefined);
    return all.length ? Math.max(...all) : undefined;
  };
  const before = rssKb() ?? 0;
  const samples: number[] = [];
  const timer = setInterval(() => {
    const v = rssKb();
    if (v !== undefined) samples.push(v);
  }, 100);
  const started = performance.now();
  // A client that takes bytes as fast as they come; bounded by a deadline of 10 MB/s + 60 s.
  const limitMs = size / 10_000 + 60_000;
  let bytes = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const req = httpGetStream(url, { headers }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET ${url}: ${res.statusCode}`));
          return;
        }
        res.on('data', (d: Buffer) => (bytes += d.length));
        res.once('end', () => resolve());
        res.once('error', reject);
      });
      req.setTimeout(limitMs, () => req.destroy(new Error(`NAR download took longer than ${Math.round(limitMs / 1000)} s`)));
      req.once('error', reject);
    });
  } finally {
    clearInterval(timer);
  }
  const secs = (performance.now() - started) / 1000;
  if (bytes !== size) throw new Error(`NAR download for the RSS run got ${bytes} bytes, expected ${size}`);
  const after = rssKb() ?? 0;
  return {
    seconds: secs,
    mbPerSec: size / secs / 1e6,
    rssBeforeMb: before / 1024,
    rssPeakMb: Math.max(before, after, ...samples) / 1024,
    rssAfterMb: after / 1024,
    samples: samples.length,
    /** RSS over time, MB, for the chart (at most 200 points). */
    series: samples.filter((_, i) => i % Math.max(1, Math.ceil(samples.length / 200)) === 0).map((kb) => Math.round(kb / 102.4) / 10),
  };
}

async function profileOrigin(ctx: Ctx, fx: Fixture, key: string, secret: string, kind: 'narinfo' | 'nar', narPaths: string[], profDir: string): Promise<ProfileSummary> {
  const port = await freePort();
  const dir = join(profDir, kind);
  mkdirSync(dir, { recursive: true });
  const p = startOrigin(`origin-profile-${kind}`, { workDir: ctx.work, root: fx.root, port, signKey: key, edgeSecret: secret, cpuProfDir: dir });
  const t = { base: `http://127.0.0.1:${port}`, headers: { 'x-eris-edge-secret': secret } };
  try {
    await waitOk('the profiled origin', `${t.base}/health`, t.headers, 30_000, [p]);
    if (kind === 'narinfo') await wrk(ctx, 'profile: origin narinfo (loaded)', t, narPaths, ctx.c.threads, ctx.c.connections, 5);
    else await wrk(ctx, 'profile: origin NAR (1 stream)', t, narPaths, 1, 1, 60);
  } finally {
    await stopProcess(p, 15_000); // SIGTERM: the origin exits cleanly and Node writes the profile
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) throw new Error(`the profiled origin wrote no .cpuprofile into ${dir}`);
  return summarizeProfile(join(dir, files[0]!));
}

function gitCommit(): string {
  const r = spawnSync('git', ['-C', PROJECT_DIR, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', timeout: 10_000 });
  const dirty = spawnSync('git', ['-C', PROJECT_DIR, 'status', '--porcelain', '--', 'origin', 'shared', 'worker'], { encoding: 'utf8', timeout: 10_000 });
  return (r.stdout ?? '').trim() + ((dirty.stdout ?? '').trim() ? '+dirty' : '');
}

async function main() {
  const c = benchConfig(process.env);
  ensureTools(c);
  const t0 = Date.now();
  const fx = ensureFixture(c, say);
  mkdirSync(tmpdir(), { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'eris-bench-run-'));
  const ctx: Ctx = { c, work, wrkLog: join(work, 'wrk.log') };
  say(`work dir ${work} (logs; ${c.keep ? 'kept' : 'removed at the end, BENCH_KEEP=1 keeps it'})`);

  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    say(`${sig}: stopping everything`);
    void stopAll().finally(() => {
      if (!c.keep) rmSync(work, { recursive: true, force: true });
      process.exit(130);
    });
    setTimeout(() => {
      killAllSync();
      process.exit(130);
    }, 10_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('exit', killAllSync);

  const m: Partial<Measurements> = {};
  let results: Results | undefined;
  try {
    const key = keygen(work).sec;
    const secret = randomBytes(24).toString('base64url');
    const [nginxPort, originPort, workerPort, bigPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // nix copy cannot send the edge secret: it reaches the origin through an nginx reverse proxy that adds it
    // (cloudflared's place in production), and the static cache through the same kind of proxy, so both pay that hop.
    const [copyNginxPort, copyOriginPort] = [await freePort(), await freePort()];
    say(`starting nginx :${nginxPort}, origin :${originPort}${c.skipWorker ? '' : `, wrangler dev :${workerPort}`}`);
    const nginx = startNginx(work, fx.staticDir, nginxPort, [
      { port: copyNginxPort, upstream: `http://127.0.0.1:${nginxPort}`, headers: {} },
      { port: copyOriginPort, upstream: `http://127.0.0.1:${originPort}`, headers: { 'x-eris-edge-secret': secret } },
    ]);
    const origin = startOrigin('origin', { workDir: work, root: fx.root, port: originPort, signKey: key, edgeSecret: secret, workers: c.originWorkers });
    const edgeHeaders = { 'x-eris-edge-secret': secret };
    await waitOk('nginx', `http://127.0.0.1:${nginxPort}/nix-cache-info`, {}, 30_000, [nginx]);
    await waitOk('the origin', `http://127.0.0.1:${originPort}/health`, edgeHeaders, 30_000, [origin]);
    const base: Omit<Target, 'narPath'>[] = [
      { name: 'nginx', base: `http://127.0.0.1:${nginxPort}`, headers: {}, copyFrom: `http://127.0.0.1:${copyNginxPort}`, proc: nginx },
      { name: 'origin', base: `http://127.0.0.1:${originPort}`, headers: edgeHeaders, copyFrom: `http://127.0.0.1:${copyOriginPort}`, proc: origin },
    ];
    let worker: Started | undefined;
    let pt: Started | undefined;
    if (!c.skipWorker) {
      const state = join(work, 'wrangler-state');
      let workerHeaders: Record<string, string> = {};
      let netrc: string | undefined;
      if (!c.anonymous) {
        say('registering a token in the local KV …');
        const token = addToken(state);
        workerHeaders = { Authorization: `Bearer ${token}` };
        // Nix sends the token as HTTP Basic from a netrc file (login = the token's user).
        netrc = join(work, 'netrc');
        writeFileSync(netrc, `machine 127.0.0.1 login bench password ${token}\n`, { mode: 0o600 });
      }
      worker = startWorker({ workDir: work, stateDir: state, port: workerPort, originPort, edgeSecret: secret, anonymous: c.anonymous });
      // The same wrangler dev with a do-nothing Worker in front of the same origin: the floor under the edge figures.
      // Both run for the whole measurement (each idle while the other is measured), so their copies can alternate.
      const ptPort = await freePort();
      pt = startPassthroughWorker({ workDir: work, port: ptPort, upstream: `http://127.0.0.1:${originPort}`, edgeSecret: secret });
      say('waiting for wrangler dev (eris edge and do-nothing Worker) …');
      await waitOk('wrangler dev', `http://127.0.0.1:${workerPort}/nix-cache-info`, workerHeaders, 180_000, [worker!, origin]);
      await waitOk('wrangler dev (do-nothing Worker)', `http://127.0.0.1:${ptPort}/nix-cache-info`, {}, 180_000, [pt]);
      base.push({ name: 'worker', base: `http://127.0.0.1:${workerPort}`, headers: workerHeaders, copyFrom: `http://127.0.0.1:${workerPort}`, proc: worker, ...(netrc ? { netrc } : {}) });
      const ptBase = `http://127.0.0.1:${ptPort}`;
      base.push({ name: 'passthrough', base: ptBase, headers: {}, copyFrom: ptBase, proc: pt });
    }
    const targets = await checkTargets(base, fx);
    const byName = (name: TargetName) => targets.find((t) => t.name === name);
    const narinfoPaths = fx.small.map((p) => `/${hashPart(p)}.narinfo`);
    const widePaths = [`/${hashPart(fx.wide)}.narinfo`];
    const closure = [fx.wide, ...fx.small];
    const narBytes = (await narinfo(targets[0]!, fx.large)).narSize;
    say(`all targets answer; measuring ${c.seconds} s per run (+${c.warmupSeconds} s warm-up)`);

    m.targets = {};
    const measure = async (t: Target) => {
      say(`${t.name}:`);
      m.targets![t.name] = {
        narinfoLoaded: await wrk(ctx, `${t.name} narinfo (${c.connections} conns)`, t, narinfoPaths, c.threads, c.connections, 5),
        narinfoWide: await wrk(ctx, `${t.name} narinfo, ${fx.small.length} refs (${c.connections} conns)`, t, widePaths, c.threads, c.connections, 5),
        narinfoSingle: await wrk(ctx, `${t.name} narinfo (1 conn)`, t, narinfoPaths, 1, 1, 5),
        narSingle: await wrk(ctx, `${t.name} NAR (1 stream)`, t, [t.narPath], 1, 1, 60),
        narParallel: await wrk(ctx, `${t.name} NAR (${c.narParallel} streams)`, t, [t.narPath], Math.min(c.threads, c.narParallel), c.narParallel, 60),
      };
    };
    for (const t of targets) await measure(t);

    // The issue-20 rows, each against its reference in alternating rounds (A B, B A, A B, …) so that load
    // from other work on the machine falls on both alike: loaded narinfo, origin against nginx …
    const pairs = ([['nginx', 'origin'], ['passthrough', 'worker']] as const).filter(([a, b]) => byName(a) && byName(b));
    const [nginxT, originT] = [byName('nginx')!, byName('origin')!];
    say(`narinfo at ${c.connections} connections, nginx and origin in ${c.rounds} alternating rounds:`);
    for (let i = 0; i < c.rounds; i++) {
      const order = i % 2 ? [originT, nginxT] : [nginxT, originT];
      for (const t of order) {
        const r = await wrk(ctx, `round ${i + 1}: ${t.name} narinfo (${c.connections} conns)`, t, narinfoPaths, c.threads, c.connections, 5);
        (m.targets![t.name]!.narinfoRounds ??= []).push(r);
      }
      // The same connections paced to half of nginx's saturated req/s in this round (each waits between an answer
      // and its next request): the latency of a server with headroom, not wrk's closed-loop queue.
      const pace = narinfoPaceMs(c.connections, m.targets!.nginx!.narinfoRounds![i]!.reqPerSec);
      for (const t of order) {
        const r = await wrk(ctx, `round ${i + 1}: ${t.name} narinfo paced, ${pace.toFixed(2)} ms between requests (${c.connections} conns)`, t, narinfoPaths, c.threads, c.connections, 5, pace);
        (m.targets![t.name]!.narinfoPaced ??= []).push(r);
      }
    }
    // … and the closure copy: nginx against the origin, the do-nothing Worker against the eris edge.
    if (c.copyRuns > 0) {
      say(`nix copy of ${closure.length} paths, ${c.copyRuns} alternating rounds of ${pairs.map((p) => p.join(' / ')).join(' and ')}:`);
      // One unmeasured copy per target first, as bench:closure does: what is measured is a server that has
      // served the closure before (JIT-compiled paths, page cache, nginx's upstream keep-alive connections),
      // not its first closure after start-up (the first measured round was the outlier: 1.74× against 1.25/1.26).
      for (const pair of pairs) {
        for (const name of pair) {
          const t = byName(name)!;
          const r = await closureCopy({ from: t.copyFrom!, path: fx.wide, closure, runs: 1, workDir: work, label: `warm-up: ${t.name} nix copy`, ...(t.netrc ? { netrc: t.netrc } : {}) });
          say(`  warm-up (not measured): ${t.name} ${r.seconds[0]!.toFixed(2)} s`);
          m.targets![name]!.closureWarmupSeconds = r.seconds[0]!;
        }
      }
      const copies = new Map<TargetName, CopyRun[]>();
      for (let i = 0; i < c.copyRuns; i++) {
        for (const pair of pairs) {
          for (const name of i % 2 ? [...pair].reverse() : pair) {
            const t = byName(name)!;
            const label = `round ${i + 1}: ${t.name} nix copy of ${closure.length} paths`;
            const r = await closureCopy({ from: t.copyFrom!, path: fx.wide, closure, runs: 1, workDir: work, label,
              ...(t.netrc ? { netrc: t.netrc } : {}), before: () => waitQuiet(label, c.quietWaitSeconds) });
            say(`  ${label}: ${r.seconds[0]!.toFixed(2)} s${r.otherCpuPct > 10 ? ` (other processes used ${r.otherCpuPct.toFixed(0)}% CPU)` : ''}`);
            copies.set(name, [...(copies.get(name) ?? []), r]);
          }
        }
      }
      for (const [name, runs] of copies) m.targets![name]!.closureCopy = mergeCopyRuns(runs);
    }
    if (worker) await stopProcess(worker);
    if (pt) await stopProcess(pt);

    say(`origin with ${fx.dbRows.root} vs ${fx.dbRows.bigRoot} valid paths in the DB:`);
    const big = startOrigin('origin-inflated-db', { workDir: work, root: fx.bigRoot, port: bigPort, signKey: key, edgeSecret: secret });
    await waitOk('the origin on the inflated DB', `http://127.0.0.1:${bigPort}/health`, edgeHeaders, 30_000, [big]);
    const bigT = { base: `http://127.0.0.1:${bigPort}`, headers: edgeHeaders };
    const smallT = targets.find((t) => t.name === 'origin')!;
    m.dbScale = {
      rowsSmall: fx.dbRows.root,
      rowsBig: fx.dbRows.bigRoot,
      small: await wrk(ctx, `origin narinfo, ${fx.dbRows.root}-path DB (1 conn)`, smallT, narinfoPaths, 1, 1, 5),
      big: await wrk(ctx, `origin narinfo, ${fx.dbRows.bigRoot}-path DB (1 conn)`, bigT, narinfoPaths, 1, 1, 5),
      smallLoaded: await wrk(ctx, `origin narinfo, ${fx.dbRows.root}-path DB (${c.connections} conns)`, smallT, narinfoPaths, c.threads, c.connections, 5),
      bigLoaded: await wrk(ctx, `origin narinfo, ${fx.dbRows.bigRoot}-path DB (${c.connections} conns)`, bigT, narinfoPaths, c.threads, c.connections, 5),
    };
    await stopProcess(big);

    const rssPath = fx.huge ?? fx.large;
    const rssInfo = await narinfo(smallT, rssPath);
    const rssMiB = (rssInfo.narSize / 2 ** 20).toFixed(0);
    // A fresh origin shows what streaming costs; the one that served all the load above shows what a busy day leaves behind.
    const freshPort = await freePort();
    const fresh = startOrigin('origin-rss', { workDir: work, root: fx.root, port: freshPort, signKey: key, edgeSecret: secret });
    await waitOk('the fresh origin', `http://127.0.0.1:${freshPort}/health`, edgeHeaders, 30_000, [fresh]);
    await sleep(500);
    say(`RSS of a fresh origin while it streams the ${rssMiB} MiB NAR of ${rssPath} …`);
    const rssFresh = await rssWhileStreaming(fresh, `http://127.0.0.1:${freshPort}/${rssInfo.url}`, edgeHeaders, rssInfo.narSize);
    await stopProcess(fresh);
    say(`  ${rssFresh.rssBeforeMb.toFixed(1)} MB before, peak ${rssFresh.rssPeakMb.toFixed(1)} MB, ${rssFresh.mbPerSec.toFixed(0)} MB/s`);
    say(`RSS of the origin that served the load above, streaming the same NAR …`);
    const rssLoaded = await rssWhileStreaming(origin, `${smallT.base}/${rssInfo.url}`, edgeHeaders, rssInfo.narSize);
    say(`  ${rssLoaded.rssBeforeMb.toFixed(1)} MB before, peak ${rssLoaded.rssPeakMb.toFixed(1)} MB, ${rssLoaded.mbPerSec.toFixed(0)} MB/s`);
    m.rss = { huge: fx.huge !== undefined, storePath: rssPath, narBytes: rssInfo.narSize, fresh: rssFresh, loaded: rssLoaded };

    if (!c.skipWorker) {
      say('edge CPU per request, in this process (the Worker app vs the do-nothing Worker, origin answered from memory) …');
      await waitQuiet('edge CPU', c.quietWaitSeconds);
      const { value, otherCpuPct } = await withOtherCpu(() => measureEdgeCpu(20_000));
      m.edgeCpu = { ...value, otherCpuPct };
      say(`  edge ${value.us.edge.narinfo.toFixed(1)} µs/narinfo (${value.us.edgeNoTokenCache.narinfo.toFixed(1)} with TOKEN_CACHE_SECONDS=0), ${value.us.edge.nar.toFixed(1)} µs/NAR response; do-nothing ${value.us.doNothing.narinfo.toFixed(1)} / ${value.us.doNothing.nar.toFixed(1)}`);
    }

    if (c.profile) {
      say('CPU profiles of the origin (--cpu-prof):');
      const profDir = join(work, 'profiles');
      m.profiles = {
        narinfo: await profileOrigin(ctx, fx, key, secret, 'narinfo', narinfoPaths, profDir),
        nar: await profileOrigin(ctx, fx, key, secret, 'nar', [smallT.narPath], profDir),
      };
    }

    results = {
      version: 1,
      date: new Date().toISOString(),
      commit: gitCommit(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memGb: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version },
      params: {
        smallPaths: fx.small.length, largeMb: c.largeMb, largeNarBytes: narBytes, huge: c.huge, hugeMb: fx.hugeMb ?? null,
        seconds: c.seconds, warmupSeconds: c.warmupSeconds, threads: c.threads, connections: c.connections, wrkCpus: c.wrkCpus, narParallel: c.narParallel, originWorkers: c.originWorkers,
        wideRefs: fx.small.length, closurePaths: closure.length, copyRuns: c.copyRuns, rounds: c.rounds,
        loadAverage: loadavg().map((x) => x.toFixed(2)).join(' '),
        workerAuth: c.skipWorker ? 'skipped' : c.anonymous ? 'anonymous' : 'bearer token (KV lookup per request)',
      },
      measurements: m as Measurements,
      targets: [],
      elapsedSeconds: 0,
    };
  } finally {
    await stopAll();
    if (!c.keep) rmSync(work, { recursive: true, force: true });
  }
  results.targets = evaluateTargets(results.measurements);
  results.elapsedSeconds = Math.round((Date.now() - t0) / 1000);

  printReport(results, (s) => process.stdout.write(s));
  mkdirSync(c.resultsDir, { recursive: true });
  const stamp = results.date.replace(/[:.]/g, '-');
  const json = JSON.stringify(results, null, 1) + '\n';
  writeFileSync(join(c.resultsDir, `${stamp}.json`), json);
  writeFileSync(join(c.resultsDir, 'latest.json'), json);
  writeFileSync(join(c.resultsDir, 'latest.svg'), renderSvg(results));
  say(`wrote ${join(c.resultsDir, `${stamp}.json`)}, latest.json and latest.svg (${results.elapsedSeconds} s in all)`);
}

main().catch((err: unknown) => {
  killAllSync();
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof BenchConfigError ? 2 : 1);
});
