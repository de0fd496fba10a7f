/**
 * Where one large `eris push` spends its time (issue #23: one 256 MiB path origin direct ≤ 3× `nix copy --to
 * file://`): the client pushes one path of TRACE_MIB MiB (default 256) to the origin through a timing proxy
 * that adds the edge secret (cloudflared's place). Printed: `nix copy --to file://` of the same path (the
 * reference), then each request of the push (when it arrived, how long its body took, how long the origin took
 * to answer after the body), the origin's log lines in time (parts received, the import), both processes' peak
 * RSS, and with TRACE_CPU_PROF=1 a CPU profile of the client and of the origin (their heaviest functions; files
 * kept under TRACE_PROF_DIR, default /tmp/eris-push-big-prof). TRACE_ARGS adds flags to `eris push`.
 *
 *   node bench/push-big-trace.ts        # TRACE_MIB=256 TRACE_CPU_PROF=1 TRACE_ARGS='--jobs 4'
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixEnv, runNix } from '../test/helpers/nix.ts';
import { ERIS_CLI, startOriginCli } from '../test/helpers/processes.ts';
import { addRandomPath, pushOriginStore, rssSampler, startTimingProxy } from './lib/push-origin.ts';
import { topFunctions } from './lib/push-profile.ts';

const MIB = Number(process.env.TRACE_MIB ?? 256);
const PROFILE = process.env.TRACE_CPU_PROF === '1';
const PROF_DIR = process.env.TRACE_PROF_DIR ?? '/tmp/eris-push-big-prof';
const SECRET = 'bench-push-edge-secret-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'eris-push-big-trace-'));
const env = nixEnv();

async function main() {
  const { sec, root } = pushOriginStore(dir, 'trace-1');
  const originProf = join(PROF_DIR, 'origin');
  const clientProf = join(PROF_DIR, 'client');
  if (PROFILE) {
    rmSync(PROF_DIR, { recursive: true, force: true });
    mkdirSync(originProf, { recursive: true });
    mkdirSync(clientProf, { recursive: true });
  }
  const log = join(dir, 'origin.log');
  const origin = await startOriginCli({
    root, keyFiles: [sec], edgeSecret: SECRET, extraArgs: ['--push-dir', join(dir, 'push')], logFile: log,
    env: PROFILE ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${originProf}` } : {},
  });
  const proxy = await startTimingProxy(origin.url, SECRET, (u) => u.replace(/[0-9a-f]{32}|[0-9a-z]{52}/, 'H').replace(/sha256=[0-9a-f]+/, 'sha256=…'));
  const { seen } = proxy;
  const proxyUrl = proxy.url;
  try {
    const ref = addRandomPath(dir, 'ref', MIB);
    const f0 = performance.now();
    await runNix(['copy', '--to', `file://${join(dir, 'file-cache')}?compression=zstd`, ref], { timeoutMs: 900_000 });
    console.log(`nix copy --to file://?compression=zstd: ${((performance.now() - f0) / 1000).toFixed(2)} s (load ${loadavg()[0]!.toFixed(2)})`);
    const path = addRandomPath(dir, 'pushed', MIB);
    const logFrom = readFileSync(log, 'utf8').length;
    const extra = process.env.TRACE_ARGS?.split(' ').filter(Boolean) ?? [];
    const originRss = rssSampler(() => origin.child.pid);
    const load = loadavg()[0]!.toFixed(2);
    const t0 = performance.now();
    proxy.state.t0 = t0;
    const wall0 = Date.now();
    const child = spawn(process.execPath, [...(PROFILE ? [`--cpu-prof`, `--cpu-prof-dir=${clientProf}`] : []), ...ERIS_CLI, 'push', '--json', ...extra, '--edge-url', proxyUrl, path], {
      env: { ...env, ERIS_TOKEN: 'unused-origin-direct', CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const clientRss = rssSampler(() => child.pid);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.once('close', r));
    const took = (performance.now() - t0) / 1000;
    const cRss = clientRss.stop();
    const oRss = originRss.stop();
    if (code !== 0) throw new Error(`eris push failed: ${err.slice(-2000)}`);
    const inside = (JSON.parse(out.trim().split('\n').pop()!) as { seconds: number }).seconds;
    console.log(`eris push origin direct ${extra.join(' ')}: ${took.toFixed(2)} s, ${inside.toFixed(2)} s after start-up (load ${load} → ${loadavg()[0]!.toFixed(2)}); peak RSS client ${cRss.toFixed(0)} MiB, origin ${oRss.toFixed(0)} MiB`);
    for (const s of seen) {
      console.log(`  +${s.arrived.toFixed(0).padStart(5)} ms ${s.method} ${s.url} → ${s.status}: body ${((s.bodyEnd ?? s.arrived) - s.arrived).toFixed(0)} ms, answered ${((s.head ?? NaN) - (s.bodyEnd ?? s.arrived)).toFixed(0)} ms after it`);
    }
    for (const line of readFileSync(log, 'utf8').slice(logFrom).split('\n').filter(Boolean)) {
      let j: Record<string, unknown>;
      try {
        j = JSON.parse(line) as Record<string, unknown>;
      } catch {
        console.log(`  origin: ${line}`); // not a log record (stderr)
        continue;
      }
      if (String(j.msg).startsWith('push')) {
        const { t: at, level: _l, msg, cache: _c, storePath: _s, path: _p, ...rest } = j;
        console.log(`  +${(Date.parse(at as string) - wall0).toFixed(0).padStart(5)} ms origin: ${msg} ${JSON.stringify(rest)}`);
      }
    }
  } finally {
    proxy.close();
    await origin.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (PROFILE) {
    for (const [who, d] of [['client', clientProf], ['origin', originProf]] as const) {
      const f = readdirSync(d).find((x) => x.endsWith('.cpuprofile'));
      if (!f) continue;
      console.log(`${who} CPU profile (${join(d, f)}), self time:`);
      for (const p of topFunctions(join(d, f), 14)) console.log(`  ${p.ms.toFixed(0).padStart(7)} ms ${p.pct.toFixed(1).padStart(5)}%  ${p.fn}`);
    }
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
