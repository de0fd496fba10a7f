/**
 * The loaded-narinfo rows of bench/run.ts on their own (issue 20: origin narinfo req/s ≥ 0.8× nginx and
 * p99 < 2 ms at 32 connections), for profiling and for comparing two versions of the origin on a busy
 * machine: wrk rotating over the fixture's small paths' .narinfo, nginx and the origin in BENCH_ROUNDS
 * alternating rounds (nginx, origin, … then the other way round), each round with its load average, the
 * server's CPU per request and the other processes' CPU share; then the medians and the median of the
 * per-round ratios, as the full run takes them.
 *
 *   npm run bench:narinfo                       # BENCH_ROUNDS (default 5) alternating rounds
 *   BENCH_NARINFO_BASE=/path/to/checkout …      # a third target: that checkout's origin (A/B of two versions)
 *   BENCH_NARINFO_BASE_WORKERS=N …              # the base target with N worker processes (with BENCH_NARINFO_BASE=. : an A/B of worker counts)
 *   BENCH_NARINFO_BASE_NODE_FLAGS='--max-semi-space-size=16' …  # node/V8 flags for the base target (with BENCH_NARINFO_BASE=. : an A/B of flags)
 *   BENCH_NARINFO_PROFILE=1 …                   # also a one-process origin under --cpu-prof with the same load
 *   BENCH_NARINFO_MISS=1 …                      # also rounds of narinfos no path has (404: nginx's missing file, the origin's miss)
 *   BENCH_NARINFO_BARE=1 …                      # a target "node": plain node:http answering the same narinfos from memory
 *                                               # (bench/lib/bare-narinfo.ts): what Node's HTTP server costs, beside the origin
 *
 * Same BENCH_* settings and fixture as bench/run.ts (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_ORIGIN_WORKERS, …).
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { benchConfig } from './lib/config.ts';
import { ensureFixture, hashPart } from './lib/fixture.ts';
import { freePort, startProcess, stopProcess, treeJiffies, withOtherCpu, type Started } from './lib/procs.ts';
import { benchScript } from './lib/script.ts';
import { narinfoPaceMs, runWrk, type WrkResult } from './lib/wrk.ts';
import { keygen, startNginx, startOrigin, waitOk } from './lib/servers.ts';
import { summarizeProfile } from './lib/profile.ts';
import { median, printProfile, wrkPinned } from './lib/report.ts';

const BARE_SERVER = new URL('./lib/bare-narinfo.ts', import.meta.url).pathname;
const t0 = Date.now();
const say = (s: string) => process.stderr.write(`[narinfo ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
const load = () => loadavg()[0]!.toFixed(2);

interface T { name: string; base: string; headers: Record<string, string>; proc: Started }
interface Round { r: WrkResult; load: string }

benchScript('narinfo', say, async (work) => {
  const env = process.env;
  const c = benchConfig(env);
  const fx = ensureFixture(c, say);
  const wrkLog = join(work, 'wrk.log');
  const paths = fx.small.map((p) => `/${hashPart(p)}.narinfo`);
  const wrk = async (t: Pick<T, 'base' | 'headers'> & { proc?: Started }, label: string, paceMs?: number, list = paths): Promise<WrkResult> => {
    const common = { base: t.base, paths: list, headers: t.headers, threads: c.threads, connections: c.connections, timeoutSeconds: 5, workDir: work, logFile: wrkLog, cpus: c.wrkCpus, ...(paceMs ? { paceMs } : {}) };
    if (c.warmupSeconds > 0) await runWrk({ ...common, seconds: c.warmupSeconds, label: `${label} (warm-up)` });
    const cpu0 = t.proc ? treeJiffies(t.proc.pid) : 0;
    const { value: r, otherCpuPct } = await withOtherCpu(() => runWrk({ ...common, seconds: c.seconds, label }));
    if (t.proc && r.requests > 0) r.serverCpuUsPerReq = ((treeJiffies(t.proc.pid) - cpu0) * 1e4) / r.requests;
    r.otherCpuPct = otherCpuPct;
    return r;
  };
  const key = keygen(work).sec;
  const secret = randomBytes(24).toString('base64url');
  const headers = { 'x-eris-edge-secret': secret };
  const nginxPort = await freePort();
  const nginx = startNginx(work, fx.staticDir, nginxPort);
  const targets: T[] = [{ name: 'nginx', base: `http://127.0.0.1:${nginxPort}`, headers: {}, proc: nginx }];
  const baseFlags = (env.BENCH_NARINFO_BASE_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const origins: [string, string | undefined, number, string[]][] = [['origin', undefined, c.originWorkers, []]];
  if (env.BENCH_NARINFO_BASE) origins.push(['base', env.BENCH_NARINFO_BASE, Number(env.BENCH_NARINFO_BASE_WORKERS || c.originWorkers), baseFlags]);
  for (const [name, checkout, workers, nodeFlags] of origins) {
    const port = await freePort();
    const proc = startOrigin(name, { workDir: work, root: fx.root, port, signKey: key, edgeSecret: secret, workers, nodeFlags, ...(checkout ? { checkout } : {}) });
    targets.push({ name, base: `http://127.0.0.1:${port}`, headers, proc });
  }
  if (env.BENCH_NARINFO_BARE === '1') {
    const port = await freePort();
    const proc = startProcess('node', process.execPath, ['--disable-warning=ExperimentalWarning', BARE_SERVER, fx.staticDir, `127.0.0.1:${port}`, String(c.originWorkers)],
      { env: { ...process.env, ERIS_EDGE_SECRET: secret }, logDir: work });
    targets.push({ name: 'node', base: `http://127.0.0.1:${port}`, headers, proc });
  }
  await waitOk('nginx', `${targets[0]!.base}/nix-cache-info`, {}, 30_000, [nginx]);
  for (const t of targets.slice(1)) await waitOk(t.name, `${t.base}/health`, headers, 30_000, [t.proc]);
  say(`${c.rounds} alternating rounds of ${c.seconds} s (+${c.warmupSeconds} s warm-up), wrk -t${c.threads} -c${c.connections}${wrkPinned(c.wrkCpus)}, origin with ${c.originWorkers} worker(s)${env.BENCH_NARINFO_BASE ? `, base = ${env.BENCH_NARINFO_BASE} with ${origins[1]![2]}${baseFlags.length ? ` and ${baseFlags.join(' ')}` : ''}` : ''}`);
  const rounds = new Map<string, Round[]>(targets.map((t) => [t.name, []]));
  const paced = new Map<string, Round[]>(targets.map((t) => [t.name, []]));
  const line = (i: number, name: string, r: WrkResult, l: string) => say(`  round ${i + 1} ${name.padEnd(13)} ${r.reqPerSec.toFixed(0).padStart(6)} req/s  p50 ${(r.latencyUs.p50 / 1000).toFixed(2)} p99 ${(r.latencyUs.p99 / 1000).toFixed(2)} ms  ${r.serverCpuUsPerReq?.toFixed(1)} µs CPU/req  load ${l}  other ${r.otherCpuPct?.toFixed(0)}% CPU${r.totalErrors ? `  ${r.totalErrors} errors` : ''}`);
  for (let i = 0; i < c.rounds; i++) {
    const order = i % 2 ? [...targets].reverse() : targets;
    for (const t of order) {
      const l = load();
      const r = await wrk(t, `round ${i + 1}: ${t.name}`);
      rounds.get(t.name)!.push({ r, load: l });
      line(i, t.name, r, l);
    }
    // The same connections paced to half of nginx's saturated rate in this round: latency a user would see
    // from a server with headroom, not wrk's closed-loop queue (≈ connections ÷ throughput).
    const pace = narinfoPaceMs(c.connections, rounds.get('nginx')![i]!.r.reqPerSec);
    for (const t of order) {
      const l = load();
      const r = await wrk(t, `round ${i + 1}: ${t.name} paced`, pace);
      paced.get(t.name)!.push({ r, load: l });
      line(i, `${t.name} paced`, r, l);
    }
  }
  const ref = rounds.get('nginx')!;
  let out = `narinfo at ${c.connections} connections, ${c.rounds} alternating rounds (load average ${ref.map((x) => x.load).join(' → ')} → ${load()} at the start of each nginx round and at the end):\n`;
  for (const t of targets) {
    const rs = rounds.get(t.name)!;
    const reqs = rs.map((x) => x.r.reqPerSec);
    const p99 = rs.map((x) => x.r.latencyUs.p99 / 1000);
    const cpu = rs.map((x) => x.r.serverCpuUsPerReq ?? NaN);
    out += `  ${t.name.padEnd(6)} req/s median ${median(reqs).toFixed(0).padStart(6)} [${reqs.map((x) => x.toFixed(0)).join(', ')}]  p99 median ${median(p99).toFixed(2)} ms [${p99.map((x) => x.toFixed(2)).join(', ')}]  CPU/req median ${median(cpu).toFixed(1)} µs  other CPU up to ${Math.max(...rs.map((x) => x.r.otherCpuPct ?? 0)).toFixed(0)}%\n`;
    if (t.name !== 'nginx') {
      const ratios = rs.map((x, i) => x.r.reqPerSec / ref[i]!.r.reqPerSec);
      out += `         req/s ÷ nginx per round ${ratios.map((x) => x.toFixed(2)).join(', ')}: median ${median(ratios).toFixed(2)}×\n`;
    }
  }
  out += `paced to half of nginx's req/s in each round (each connection waits connections ÷ that rate between an answer and its next request):\n`;
  for (const t of targets) {
    const rs = paced.get(t.name)!;
    const p99 = rs.map((x) => x.r.latencyUs.p99 / 1000);
    out += `  ${t.name.padEnd(6)} req/s [${rs.map((x) => x.r.reqPerSec.toFixed(0)).join(', ')}]  p50 median ${median(rs.map((x) => x.r.latencyUs.p50 / 1000)).toFixed(2)} ms  p99 median ${median(p99).toFixed(2)} ms [${p99.map((x) => x.toFixed(2)).join(', ')}]  CPU/req median ${median(rs.map((x) => x.r.serverCpuUsPerReq ?? NaN)).toFixed(1)} µs\n`;
  }
  /** The origin against another target, round by round. */
  const originVersus = (name: string, label: string) => {
    const [a, b] = [rounds.get('origin')!, rounds.get(name)!];
    const ratios = a.map((x, i) => x.r.reqPerSec / b[i]!.r.reqPerSec);
    out += `  origin ÷ ${label} req/s per round ${ratios.map((x) => x.toFixed(2)).join(', ')}: median ${median(ratios).toFixed(2)}×; CPU/req ${median(a.map((x) => x.r.serverCpuUsPerReq!)).toFixed(1)} vs ${median(b.map((x) => x.r.serverCpuUsPerReq!)).toFixed(1)} µs\n`;
  };
  if (env.BENCH_NARINFO_BASE) originVersus('base', 'base');
  if (env.BENCH_NARINFO_BARE === '1') originVersus('node', 'plain node:http');
  if (env.BENCH_NARINFO_MISS === '1') {
    // Narinfos no path has (each small path's hash part reversed): nginx's 404 for a missing file against the origin's.
    const misses = paths.map((p) => `/${p.slice(1, 33).split('').reverse().join('')}.narinfo`);
    const missRounds = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
    for (let i = 0; i < c.rounds; i++) {
      for (const t of i % 2 ? [...targets].reverse() : targets) {
        const r = await wrk(t, `round ${i + 1}: ${t.name} misses`, undefined, misses);
        missRounds.get(t.name)!.push(r);
        line(i, `${t.name} misses`, { ...r, totalErrors: r.totalErrors - r.errors.status }, load()); // every answer a 404: not an error here
      }
    }
    out += `narinfo misses (404) at ${c.connections} connections, ${c.rounds} alternating rounds:\n`;
    const refMiss = missRounds.get('nginx')!;
    for (const t of targets) {
      const rs = missRounds.get(t.name)!;
      const reqs = rs.map((x) => x.reqPerSec);
      out += `  ${t.name.padEnd(6)} req/s median ${median(reqs).toFixed(0).padStart(6)} [${reqs.map((x) => x.toFixed(0)).join(', ')}]  p99 median ${median(rs.map((x) => x.latencyUs.p99 / 1000)).toFixed(2)} ms  CPU/req median ${median(rs.map((x) => x.serverCpuUsPerReq ?? NaN)).toFixed(1)} µs\n`;
      if (t.name !== 'nginx') {
        const ratios = rs.map((x, i) => x.reqPerSec / refMiss[i]!.reqPerSec);
        out += `         req/s ÷ nginx per round ${ratios.map((x) => x.toFixed(2)).join(', ')}: median ${median(ratios).toFixed(2)}×\n`;
      }
    }
  }
  process.stdout.write(out);
  for (const t of targets.slice(1)) await stopProcess(t.proc);

  if (env.BENCH_NARINFO_PROFILE === '1') {
    const profDir = join(work, 'profile');
    mkdirSync(profDir, { recursive: true });
    const port = await freePort();
    const prof = startOrigin('origin-profiled', { workDir: work, root: fx.root, port, signKey: key, edgeSecret: secret, cpuProfDir: profDir });
    const t = { base: `http://127.0.0.1:${port}`, headers, proc: prof };
    await waitOk('the profiled origin', `${t.base}/health`, headers, 30_000, [prof]);
    const r = await wrk(t, 'profiled origin (one process)');
    say(`  profiled origin: ${r.reqPerSec.toFixed(0)} req/s, ${r.serverCpuUsPerReq?.toFixed(1)} µs CPU/req, p99 ${(r.latencyUs.p99 / 1000).toFixed(2)} ms`);
    await stopProcess(prof, 15_000);
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) printProfile(`origin CPU profile (one process, ${c.warmupSeconds + c.seconds} s of narinfo load, load ${load()}), ${join(profDir, file)}, start-up left out`, summarizeProfile(join(profDir, file), 25, { skipStartup: true }), (s) => process.stdout.write(s), 25);
  }
});
