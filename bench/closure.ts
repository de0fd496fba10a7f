/**
 * The closure-copy row of bench/run.ts on its own, for profiling and for a busy machine: real Nix
 * `nix copy` of the fixture's 301-path closure from nginx's static cache and from the origin, both
 * behind the same nginx reverse-proxy hop, in alternating runs (nginx, origin, nginx, origin, …) so
 * that load from other work on the machine falls on both alike. Prints every run, the medians and
 * the ratio of medians, plus the other processes' CPU share.
 *
 *   npm run bench:closure                 # BENCH_COPY_RUNS (default 5) alternating pairs
 *   BENCH_CLOSURE_PROFILE=1 …             # also one origin run under --cpu-prof (one worker) and a summary
 *   BENCH_CLOSURE_LOG=1 …                 # per-request times from the proxies' access log, by kind of request
 *   BENCH_CLOSURE_STRACE=1 …              # instead of the profile, strace -c of that origin's 3 copies
 *   BENCH_CLOSURE_BASE=/path/to/checkout … # a third target in every round: that checkout's origin (A/B of two versions)
 *   BENCH_CLOSURE_BASE_WORKERS=N …        # the base target with N worker processes (with BENCH_CLOSURE_BASE=$PWD: an A/B of worker counts)
 *
 * It uses bench/run.ts's fixture (the same BENCH_* settings; BENCH_LARGE_MB is irrelevant here and
 * defaults to 16 so a first build is quick) and its servers; the origin runs BENCH_ORIGIN_WORKERS
 * processes as in the full run.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { benchConfig } from './lib/config.ts';
import { ensureFixture } from './lib/fixture.ts';
import { contextSwitches, freePort, sleep, startProcess, stopProcess, treeJiffies, type Started } from './lib/procs.ts';
import { benchScript } from './lib/script.ts';
import { closureCopy } from './lib/closure.ts';
import { keygen, startNginx, startOrigin, waitOk } from './lib/servers.ts';
import { summarizeProfile } from './lib/profile.ts';
import { median, printProfile } from './lib/report.ts';

const t0 = Date.now();
const say = (s: string) => process.stderr.write(`[closure ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

/**
 * Per-request figures from the proxies' access log (BENCH_CLOSURE_LOG=1): by target and kind of request,
 * the count and nginx's $request_time (client's first byte in to last byte out, as the proxy saw it)
 * and $upstream_header_time (until the server behind it answered with headers), in ms.
 */
function timings(log: string, names: Record<string, string>): string {
  const rows = new Map<string, { total: number[]; header: number[] }>();
  const conns = new Map<string, Set<string>>();
  for (const line of log.split('\n')) {
    const m = /^\S+ (\d+) "(\S+) (\S+) [^"]*" (\d+) \d+ (\S+) \S+ (\S+) \S+ (\d+) \d+$/.exec(line);
    if (!m) continue;
    const [, port, method, url, status, total, header, conn] = m;
    const target = names[port!] ?? port!;
    const kind = url!.endsWith('.narinfo') ? `${method} narinfo ${status}` : url!.startsWith('/nar/') ? `${method} nar ${status}` : `${method} ${url} ${status}`;
    const key = `${target.padEnd(7)} ${kind}`;
    const row = rows.get(key) ?? { total: [], header: [] };
    row.total.push(Number(total) * 1000);
    row.header.push(Number(header) * 1000);
    rows.set(key, row);
    conns.set(target, (conns.get(target) ?? new Set()).add(conn!));
  }
  const f = (x: number) => x.toFixed(2).padStart(6);
  let out = 'per request, as the proxy saw it (ms): count, request time p50/p90/p99/sum, upstream header time p50/p90\n';
  for (const [key, r] of [...rows].sort()) {
    const sum = r.total.reduce((a, b) => a + b, 0);
    out += `  ${key.padEnd(32)} ${String(r.total.length).padStart(5)}  ${f(pct(r.total, 50))} ${f(pct(r.total, 90))} ${f(pct(r.total, 99))} ${sum.toFixed(0).padStart(6)}   ${f(pct(r.header, 50))} ${f(pct(r.header, 90))}\n`;
  }
  for (const [t, c] of conns) out += `  ${t}: ${c.size} client connections\n`;
  return out;
}

benchScript('closure', say, async (work) => {
  const env: NodeJS.ProcessEnv = { BENCH_LARGE_MB: '16', BENCH_DB_ROWS: '1000', BENCH_COPY_RUNS: '5', ...process.env };
  const c = benchConfig(env);
  const fx = ensureFixture(c, say);
  const key = keygen(work).sec;
  const secret = randomBytes(24).toString('base64url');
  const [nginxPort, originPort, viaNginx, viaOrigin, basePort, viaBase] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const accessLog = env.BENCH_CLOSURE_LOG === '1' ? join(work, 'access.log') : undefined;
  const base = env.BENCH_CLOSURE_BASE;
  const nginx = startNginx(work, fx.staticDir, nginxPort, [
    { port: viaNginx, upstream: `http://127.0.0.1:${nginxPort}`, headers: {} },
    { port: viaOrigin, upstream: `http://127.0.0.1:${originPort}`, headers: { 'x-eris-edge-secret': secret } },
    ...(base ? [{ port: viaBase, upstream: `http://127.0.0.1:${basePort}`, headers: { 'x-eris-edge-secret': secret } }] : []),
  ], accessLog ? { accessLog } : {});
  const origin = startOrigin('origin', { workDir: work, root: fx.root, port: originPort, signKey: key, edgeSecret: secret, workers: c.originWorkers });
  const baseOrigin = base ? startOrigin('base', { workDir: work, root: fx.root, port: basePort, signKey: key, edgeSecret: secret, workers: Number(env.BENCH_CLOSURE_BASE_WORKERS || c.originWorkers), checkout: base }) : undefined;
  await waitOk('nginx', `http://127.0.0.1:${nginxPort}/nix-cache-info`, {}, 30_000, [nginx]);
  await waitOk('the origin', `http://127.0.0.1:${originPort}/health`, { 'x-eris-edge-secret': secret }, 30_000, [origin]);
  if (baseOrigin) await waitOk('the base origin', `http://127.0.0.1:${basePort}/health`, { 'x-eris-edge-secret': secret }, 30_000, [baseOrigin]);
  const closure = [fx.wide, ...fx.small];
  const copy = (from: string, label: string) => closureCopy({ from, path: fx.wide, closure, runs: 1, workDir: work, label });
  const targets = [['nginx', viaNginx], ['origin', viaOrigin], ...(base ? [['base', viaBase]] : [])] as [string, number][];
  // One unmeasured copy each: page cache, JIT, nginx's upstream keep-alive pool.
  const warm: string[] = [];
  for (const [name, url] of targets) warm.push(`${name} ${(await copy(`http://127.0.0.1:${url}`, `warm-up ${name}`)).seconds[0]!.toFixed(3)} s`);
  const runs = new Map<string, number[]>(targets.map(([name]) => [name, []]));
  // CPU time of the server behind the proxy per copy (the origins' process trees; nginx's static answers share
  // a process tree with the proxies, so no figure for it): less swayed by other work than the copy's time.
  const procOf: Record<string, Started | undefined> = { origin, base: baseOrigin };
  const cpuMs = new Map<string, number[]>(targets.map(([name]) => [name, []]));
  let other = 0;
  say(`${c.copyRuns} alternating rounds of nix copy (${closure.length} paths), origin with ${c.originWorkers} worker(s)${base ? `, base = ${base}` : ''}; load average ${loadavg()[0]!.toFixed(2)}`);
  for (let i = 0; i < c.copyRuns; i++) {
    for (const [name, url] of i % 2 ? [...targets].reverse() : targets) {
      const proc = procOf[name];
      const cpu0 = proc ? treeJiffies(proc.pid) : 0;
      const r = await copy(`http://127.0.0.1:${url}`, name);
      if (proc) cpuMs.get(name)!.push((treeJiffies(proc.pid) - cpu0) * 10);
      runs.get(name)!.push(r.seconds[0]!);
      other = Math.max(other, r.otherCpuPct);
      say(`  ${name.padEnd(6)} ${r.seconds[0]!.toFixed(3)} s  (other processes ${r.otherCpuPct.toFixed(0)}% CPU, load ${loadavg()[0]!.toFixed(2)})`);
    }
  }
  const ng = runs.get('nginx')!;
  let out = `nix copy of ${closure.length} paths, ${c.copyRuns} alternating rounds (other processes up to ${other.toFixed(0)}% CPU, load average ${loadavg()[0]!.toFixed(2)} at the end); unmeasured warm-up copies: ${warm.join(', ')}\n`;
  for (const [name] of targets) {
    const xs = runs.get(name)!;
    const cpu = cpuMs.get(name)!;
    out += `  ${name.padEnd(6)} median ${median(xs).toFixed(3)} s  [${xs.map((x) => x.toFixed(3)).join(', ')}]${cpu.length ? `; server CPU per copy median ${median(cpu).toFixed(0)} ms [${cpu.join(', ')}]` : ''}\n`;
  }
  for (const [name] of targets.slice(1)) {
    const xs = runs.get(name)!;
    const ratios = xs.map((o, i) => o / ng[i]!);
    out += `  ${name} / nginx: ${(median(xs) / median(ng)).toFixed(2)}x (medians), per round ${ratios.map((x) => x.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(2)}x)\n`;
  }
  process.stdout.write(out);
  await stopProcess(origin);
  if (baseOrigin) await stopProcess(baseOrigin);
  if (accessLog) process.stdout.write(timings(readFileSync(accessLog, 'utf8'), { [viaNginx]: 'nginx', [viaOrigin]: 'origin', [viaBase]: 'base' }));

  if (env.BENCH_CLOSURE_PROFILE === '1' || env.BENCH_CLOSURE_STRACE === '1') {
    // strace stops the process at every system call and --cpu-prof's sampling signals are system calls too: one or the other.
    const strace = env.BENCH_CLOSURE_STRACE === '1';
    const profDir = join(work, 'profile');
    mkdirSync(profDir, { recursive: true });
    const port = await freePort();
    const prof: Started = startOrigin('origin-profiled', { workDir: work, root: fx.root, port, signKey: key, edgeSecret: secret, ...(strace ? {} : { cpuProfDir: profDir }) });
    await waitOk('the profiled origin', `http://127.0.0.1:${port}/health`, { 'x-eris-edge-secret': secret }, 30_000, [prof]);
    // Straight to the origin would need the secret; a second proxy in the same nginx would need a restart:
    // the profiled origin takes the proxied port's place by a fresh nginx of its own.
    const proxyPort = await freePort();
    const n2 = startNginx(join(work, 'n2'), fx.staticDir, await freePort(), [{ port: proxyPort, upstream: `http://127.0.0.1:${port}`, headers: { 'x-eris-edge-secret': secret } }]);
    await waitOk('nginx 2', `http://127.0.0.1:${proxyPort}/health`, {}, 30_000, [n2]);
    await copy(`http://127.0.0.1:${proxyPort}`, 'profiled, warm-up');
    // strace -c counts the system calls of every thread (the event loop and the thread pool) over the measured copies.
    const straced = strace ? startProcess('strace', 'strace', ['-c', '-f', '-o', join(work, 'strace.txt'), '-p', String(prof.pid)], { logDir: work }) : undefined;
    if (straced) await sleep(1000); // attached
    const [cpu0, cs0] = [treeJiffies(prof.pid!), contextSwitches(prof.pid!)];
    for (let i = 0; i < 3; i++) say(`  profiled origin: ${(await copy(`http://127.0.0.1:${proxyPort}`, 'profiled')).seconds[0]!.toFixed(3)} s`);
    const [cpu1, cs1] = [treeJiffies(prof.pid!), contextSwitches(prof.pid!)];
    process.stdout.write(`origin (one process${strace ? ', under strace' : ', under --cpu-prof'}) over 3 copies: ${(cpu1 - cpu0) * 10} ms CPU, ` +
      `${cs1.voluntary - cs0.voluntary} voluntary and ${cs1.involuntary - cs0.involuntary} involuntary context switches (all threads)\n`);
    if (straced) {
      straced.proc.kill('SIGINT'); // detaches and writes the summary
      await new Promise((r) => straced.proc.once('exit', r));
      process.stdout.write(`system calls of the origin over 3 copies (strace -c -f):\n${readFileSync(join(work, 'strace.txt'), 'utf8')}`);
    }
    await stopProcess(prof, 15_000);
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) printProfile(`origin CPU profile, ${join(profDir, file)}, warm-up and 3 copies, start-up left out`, summarizeProfile(join(profDir, file), 15, { skipStartup: true }), (s) => process.stdout.write(s), 15);
  }
});
