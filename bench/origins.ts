/**
 * Optional benchmark for issue 13: the eris edge in front of one origin vs
 * three, in one run, on loopback, under `wrangler dev --local`.
 *
 *   node --disable-warning=ExperimentalWarning bench/origins.ts
 *
 * - 1 origin: ORIGIN_URL → an origin holding the benchmark's closure (bench/lib/fixture.ts).
 * - 3 origins: ORIGINS = [a, b, c] where only c holds the closure (a and b hold one small path):
 *   the worst case, every narinfo asked of a and b (404) before c answers; NARs then go straight
 *   to c (the narinfo names it).
 * Measured for each: narinfo latency (sequential GETs over every small path, p50/p90 ms),
 * narinfo requests/s with 16 concurrent clients, and the time real `nix copy` takes for the
 * 301-path closure (median of BENCH_COPY_RUNS). Printed, with the 3/1 ratios, as JSON.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { benchConfig } from './lib/config.ts';
import { ensureFixture, hashPart } from './lib/fixture.ts';
import { closureCopy } from './lib/closure.ts';
import { generateKeyPair } from '../shared/signing.ts';
import { addToken } from '../origin/tokens/cli.ts';
import { freePort, startEdge, startOriginCli, type EdgeProc, type OriginProc } from '../test/helpers/processes.ts';

const say = (s: string) => process.stderr.write(`[bench-origins] ${s}\n`);
const SECRET = 'bench-origins-edge-secret-0123456789';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function latency(base: string, headers: Record<string, string>, paths: string[]): Promise<{ p50: number; p90: number }> {
  const ms: number[] = [];
  for (const p of paths) {
    const t = performance.now();
    const res = await fetch(base + p, { headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${p}: ${res.status}`);
    ms.push(performance.now() - t);
  }
  return { p50: pct(ms, 50), p90: pct(ms, 90) };
}

async function throughput(base: string, headers: Record<string, string>, paths: string[], seconds: number, clients = 16): Promise<number> {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: clients }, async (_, k) => {
    for (let i = k; performance.now() < end; i++) {
      const res = await fetch(base + paths[i % paths.length]!, { headers });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${res.status}`);
      n++;
    }
  }));
  return n / seconds;
}

async function main() {
  const c = benchConfig(process.env);
  const fx = ensureFixture(c, say);
  const work = mkdtempSync(join(tmpdir(), 'eris-bench-origins-'));
  const procs: { stop(): Promise<void> }[] = [];
  try {
    const key = generateKeyPair('eris-bench-origins-1');
    const keyFile = join(work, 'key.sec');
    writeFileSync(keyFile, key.secret);
    const env = process.getuid?.() === 0 ? { ...process.env, NIX_REMOTE: '' } : process.env;
    const missRoots = ['a', 'b'].map((id) => {
      const root = join(work, `root-${id}`);
      execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--no-check-sigs', '--from', fx.root, '--to', root, fx.small[0]!], { env, stdio: 'pipe' });
      return root;
    });
    const start = async (root: string): Promise<OriginProc> => {
      const o = await startOriginCli({ root, keyFiles: [keyFile], edgeSecret: SECRET, port: await freePort() });
      procs.push(o);
      return o;
    };
    const [a, b, full] = [await start(missRoots[0]!), await start(missRoots[1]!), await start(fx.root)];
    say('starting two wrangler dev edges …');
    const one: EdgeProc = await startEdge({ originUrl: full.url, edgeSecret: SECRET });
    procs.push(one);
    const three: EdgeProc = await startEdge({
      originUrl: full.url,
      edgeSecret: SECRET,
      vars: { ORIGINS: JSON.stringify([{ id: 'a', url: a.url }, { id: 'b', url: b.url }, { id: 'c', url: full.url }]) },
    });
    procs.push(three);
    const results: Record<string, Record<string, number>> = {};
    for (const [label, edge] of [['1 origin', one], ['3 origins', three]] as const) {
      const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'bench', { scopes: ['read'] });
      const headers = { Authorization: `Bearer ${token}` };
      const netrc = join(work, `netrc-${edge.port}`);
      writeFileSync(netrc, `machine 127.0.0.1 login bench password ${token}\n`);
      const paths = fx.small.slice(1).map((p) => `/${hashPart(p)}.narinfo`);
      await latency(edge.url, headers, paths.slice(0, 20)); // warm-up
      say(`${label}: narinfo latency …`);
      const lat = await latency(edge.url, headers, paths);
      say(`${label}: narinfo throughput …`);
      const rps = await throughput(edge.url, headers, paths, c.seconds);
      say(`${label}: nix copy of the ${fx.small.length + 1}-path closure × ${c.copyRuns} …`);
      const copy = await closureCopy({ from: edge.url, path: fx.wide, closure: [fx.wide, ...fx.small], runs: Math.max(1, c.copyRuns), workDir: work, netrc, label });
      const r1 = (x: number) => Math.round(x * 10) / 10;
      results[label] = { narinfoP50Ms: r1(lat.p50), narinfoP90Ms: r1(lat.p90), narinfoRps: r1(rps), copyMedianS: r1(copy.median) };
    }
    const r1 = results['1 origin']!;
    const r3 = results['3 origins']!;
    const ratio = Object.fromEntries(Object.keys(r1).map((k) => [k, Math.round((r3[k]! / r1[k]!) * 100) / 100]));
    process.stdout.write(JSON.stringify({ when: new Date().toISOString(), scenario: '3 origins: the closure on the last only', results, ratio3to1: ratio }, null, 2) + '\n');
  } finally {
    for (const p of procs.reverse()) await p.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/origins: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
