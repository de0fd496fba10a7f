/**
 * Where one `nix copy --to <origin>` spends its time, per request (issue #23), beside what stock Nix 2.8
 * costs without us: first the same paths to a do-nothing HTTP binary cache (every PUT drained and answered
 * 200, every GET/HEAD 404: Nix's own HTTP upload, the floor for any server) and to `file://`, then to the
 * origin direct behind a timing proxy that adds the edge secret (cloudflared's place). Per request kind:
 * how long its body took to arrive, how long the origin took to answer after it, the whole request; and the
 * client's own time between an answer and its next request. The origin's peak RSS is sampled.
 * PROBE_WIDE=N pushes a wide closure of N × 2 KiB paths, PROBE_BIG_MIB=M one path of M MiB (both 0 by
 * default: set one); PROBE_NULL=0 skips the do-nothing server and file://; PROBE_CPU_PROF=1 profiles the
 * origin (to PROBE_PROF_OUT); PROBE_KEEP=1 keeps the origin's directory and log.
 *
 *   PROBE_WIDE=1001 node bench/push-probe.ts
 *   PROBE_BIG_MIB=256 node bench/push-probe.ts
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixEnv, runNix } from '../test/helpers/nix.ts';
import { addRandomPath, pushOriginStore, startTimingProxy } from './lib/push-origin.ts';
import { startOriginCli } from '../test/helpers/processes.ts';
import { startDoNothingCache } from './lib/do-nothing-cache.ts';

const WIDE = Number(process.env.PROBE_WIDE ?? 0);
const BIG = Number(process.env.PROBE_BIG_MIB ?? 0);
const SECRET = 'bench-push-edge-secret-0123456789';
const PUSH_NIX = new URL('../test/fixtures/push.nix', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'eris-push-probe-'));
const env = nixEnv();

async function main() {
  const { sec, root } = pushOriginStore(dir, 'probe-1');
  const profDir = join(dir, 'prof');
  const origin = await startOriginCli({
    root, keyFiles: [sec], edgeSecret: SECRET, extraArgs: ['--push-dir', join(dir, 'push')], logFile: join(dir, 'origin.log'),
    env: process.env.PROBE_CPU_PROF === '1' ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` } : {},
  });
  const proxy = await startTimingProxy(origin.url, SECRET, (u) => u.replace(/[0-9a-z]{32,52}/, 'H'));
  const { seen } = proxy;
  const t0 = proxy.state.t0;
  const url = `${proxy.url}?compression=zstd`;
  let maxRss = 0;
  const rssTimer = setInterval(() => {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${origin.child.pid}/status`, 'utf8'));
      if (m) maxRss = Math.max(maxRss, Number(m[1]) / 1024);
    } catch {}
  }, 50);
  const paths: string[] = [];
  const salt = randomBytes(4).toString('hex');
  if (WIDE) paths.push(execFileSync('nix-build', [PUSH_NIX, '-A', 'wide', '--argstr', 'salt', salt, '--arg', 'n', String(WIDE), '--arg', 'kib', '2',
    '--no-out-link', '--max-jobs', '4', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  if (BIG) paths.push(addRandomPath(dir, `big-${salt}`, BIG));
  const rssBefore = maxRss;
  const load = loadavg()[0]!.toFixed(2);
  let started = performance.now() - t0;
  if (process.env.PROBE_NULL !== '0') {
    // A do-nothing binary cache over HTTP: what Nix 2.8's own HTTP upload costs (nothing stored, every PUT drained and answered 200).
    const nothing = await startDoNothingCache();
    const s0 = performance.now();
    const n = await runNix(['copy', '--to', `${nothing.url}?compression=zstd`, ...paths], { timeoutMs: 1_800_000 });
    console.log(`nix copy to a do-nothing HTTP server: ${((performance.now() - s0) / 1000).toFixed(2)} s (exit ${n.code}, load ${loadavg()[0]!.toFixed(2)})`);
    const f0 = performance.now();
    await runNix(['copy', '--to', `file://${join(dir, 'file-cache')}?compression=zstd`, ...paths], { timeoutMs: 1_800_000 });
    console.log(`nix copy to file://: ${((performance.now() - f0) / 1000).toFixed(2)} s`);
    rmSync(join(dir, 'file-cache'), { recursive: true, force: true });
    await nothing.close();
  }
  started = performance.now() - t0;
  const r = await runNix(['copy', '--to', url, ...paths], { timeoutMs: 1_800_000 });
  const took = (performance.now() - t0 - started) / 1000;
  clearInterval(rssTimer);
  if (r.code !== 0) console.error(r.stderr.slice(-2000));
  console.log(`nix copy: ${took.toFixed(2)} s (load ${load} → ${loadavg()[0]!.toFixed(2)}), origin max RSS ${maxRss.toFixed(0)} MiB (${rssBefore.toFixed(0)} before)`);
  const kinds = new Map<string, number[][]>();
  for (const s of seen) {
    if (s.arrived < started) continue;
    const kind = `${s.method} ${s.url.replace(/^\/[^/]*?(nar\/|H)/, '/$1').replace(/\?.*/, '')}`;
    const row = [s.arrived - started, (s.bodyEnd ?? s.arrived) - s.arrived, (s.head ?? NaN) - (s.bodyEnd ?? s.arrived), (s.end ?? NaN) - s.arrived];
    if (!kinds.has(kind)) kinds.set(kind, []);
    kinds.get(kind)!.push(row);
    if (BIG && !WIDE) console.log(`${kind} ${s.status}: at ${row[0]!.toFixed(0)} ms, body ${row[1]!.toFixed(0)} ms, then head after ${row[2]!.toFixed(1)} ms, all ${row[3]!.toFixed(0)} ms`);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [k, rows] of kinds) console.log(`${k}: ${rows.length}×, median body ${med(rows.map((r) => r[1]!)).toFixed(2)} ms, answer after body ${med(rows.map((r) => r[2]!)).toFixed(2)} ms, whole ${med(rows.map((r) => r[3]!)).toFixed(2)} ms, sum ${(rows.reduce((a, r) => a + r[3]!, 0) / 1000).toFixed(2)} s`);
  const all = seen.filter((s) => s.arrived >= started).sort((a, b) => a.arrived - b.arrived);
  let gaps = 0;
  for (let i = 1; i < all.length; i++) gaps += Math.max(0, all[i]!.arrived - (all[i - 1]!.end ?? all[i]!.arrived));
  console.log(`client time between an answer and the next request: ${(gaps / 1000).toFixed(2)} s`);
  proxy.close();
  await origin.stop();
  if (process.env.PROBE_CPU_PROF === '1') {
    const f = readdirSync(profDir).find((x) => x.endsWith('.cpuprofile'));
    if (f) renameSync(join(profDir, f), process.env.PROBE_PROF_OUT ?? '/tmp/probe.cpuprofile');
  }
  if (process.env.PROBE_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  else console.log(dir);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
