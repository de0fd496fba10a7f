/**
 * Where a batch push spends its time at the origin (issue #23): `eris push` of wide closures (BENCH_PUSH_WIDE,
 * default "101,1001", 2 KiB paths) straight to `eris serve --push-dir` on a chroot store (through the
 * edge-secret proxy, as bench/push.ts's "eris push origin" row), each closure REPEAT times (default 1), and
 * `nix copy --to <a local store dir>` of the same closure, alternating. Prints the wall times, the load and what
 * the origin logged of its batches (checks, imports, per-step times); BENCH_PUSH_PROFILE=1 adds the origin's
 * heaviest functions (V8 CPU profile). Each round pushes with the packed client (`npm run build:cli`, built into the
 * run's directory) and with the project's TypeScript `eris`, a closure of its own each.
 *   node bench/push-batch-micro.ts
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixEnv, runNix } from '../test/helpers/nix.ts';
import { ERIS_CLI, startOriginCli } from '../test/helpers/processes.ts';
import { startRecordingProxy } from '../test/helpers/recording-proxy.ts';
import { pushOriginStore } from './lib/push-origin.ts';
import { topFunctions } from './lib/push-profile.ts';
import { buildPackedCli } from '../scripts/build-cli.ts';

const WIDE = (process.env.BENCH_PUSH_WIDE ?? '101,1001').split(',').map(Number);
const REPEAT = Number(process.env.REPEAT ?? 1);
const PROFILE = process.env.BENCH_PUSH_PROFILE === '1';
const SECRET = 'bench-push-edge-secret-0123456789';
const PUSH_NIX = new URL('../test/fixtures/push.nix', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'eris-push-batch-'));
const env = nixEnv();

const buildWide = (n: number, salt: string) => execFileSync('nix-build', [PUSH_NIX, '-A', 'wide', '--argstr', 'salt', salt, '--arg', 'n', String(n), '--arg', 'kib', '2',
  '--no-out-link', '--max-jobs', '4', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

function erisPush(cli: string[], url: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [...cli, 'push', '--json', '--edge-url', url, path], { env: { ...env, ERIS_TOKEN: 'x', CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.resume();
    child.once('close', (code) => (code === 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(err.slice(-2000)))));
  });
}

async function main() {
  const { sec, root } = pushOriginStore(dir, 'bench-push-1');
  const log = join(dir, 'origin.log');
  const profDir = join(dir, 'prof');
  const origin = await startOriginCli({ root, keyFiles: [sec], edgeSecret: SECRET, extraArgs: ['--push-dir', join(dir, 'push')], logFile: log,
    env: PROFILE ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` } : {} });
  const proxy = await startRecordingProxy(origin.url, { headers: { 'x-eris-edge-secret': SECRET } });
  const run = randomBytes(4).toString('hex');
  const packed = join(dir, 'eris.mjs');
  await buildPackedCli(packed);
  try {
    for (const n of WIDE) {
      for (let r = 0; r < REPEAT; r++) {
        const a = buildWide(n, `${run}-${n}-${r}-a`);
        const local = join(dir, `local-${n}-${r}`);
        const t0 = performance.now();
        const c = await runNix(['copy', '--to', local, a, '--no-check-sigs'], { timeoutMs: 600_000 });
        if (c.code !== 0) throw new Error(c.stderr);
        const localS = (performance.now() - t0) / 1000;
        const tsPath = buildWide(n, `${run}-${n}-${r}-c`);
        const ts = await erisPush(ERIS_CLI, proxy.url, tsPath);
        const before = readFileSync(log, 'utf8').length;
        const s = await erisPush([packed], proxy.url, buildWide(n, `${run}-${n}-${r}-b`));
        const lines = readFileSync(log, 'utf8').slice(before).split('\n').filter((l) => l.includes('"push: batch"')).map((l) => JSON.parse(l) as Record<string, unknown>);
        const sum = (k: string) => lines.reduce((x, l) => x + Number(l[k] ?? 0), 0);
        console.log(`${n} paths: local store ${localS.toFixed(2)} s, eris push origin ${s.toFixed(2)} s (${(s / localS).toFixed(1)}x; TypeScript eris ${ts.toFixed(2)} s, ${(ts / localS).toFixed(1)}x), load ${loadavg()[0]!.toFixed(2)}; ` +
          `${lines.length} batches, checks ${sum('checkMs')} ms, imports ${sum('importMs')} ms (${(sum('importMs') / n).toFixed(2)} ms a path)`);
        for (const l of lines) console.log(`  ${JSON.stringify(Object.fromEntries(Object.entries(l).filter(([k]) => !['t', 'level', 'msg', 'cache', 'user'].includes(k))))}`);
        rmSync(local, { recursive: true, force: true });
      }
    }
  } finally {
    await proxy.close();
    await origin.stop();
  }
  if (PROFILE) {
    const f = readdirSync(profDir).find((x) => x.endsWith('.cpuprofile'));
    if (f) for (const t of topFunctions(join(profDir, f), 25)) console.log(`${t.ms.toFixed(0).padStart(6)} ms ${t.pct.toFixed(1).padStart(5)}%  ${t.fn}`);
  }
  rmSync(dir, { recursive: true, force: true });
}
main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
