/**
 * Push throughput (issues #11, #23): real `nix copy --to <url>` of
 *   - wide closures of small paths (BENCH_PUSH_WIDE, default "101,1001": one path referring to all the
 *     others, each BENCH_PUSH_KIB KiB of random bytes, default 2 — a wide CI output), and
 *   - one big path (BENCH_PUSH_BIG_MIB MiB of random bytes, default 256): a build output (test/fixtures/push.nix's
 *     `big`, input-addressed), as CI pushes one; BENCH_PUSH_BIG_KIND=added makes it a `nix store add-file` path
 *     instead (content-addressed, flat: the Nix daemon hashes such a file once more on import, after the NarHash
 *     check — Nix's own cost, which `nix copy --to file://` does not pay; the eris push origin row's note gives
 *     one push of such a path either way),
 * from this machine's store, to these targets measured in the same run:
 *   file://      a local binary cache directory (zstd): the client's own cost — the reference for the big path
 *   local store  `nix copy --to <a chroot store dir>`: Nix importing into a store, no network — the reference for closures
 *   do-nothing HTTP  a binary cache over HTTP that drains every PUT and answers at once (bench/lib/do-nothing-cache.ts):
 *                the client's own HTTP upload, the floor for any server (issue #23's origin targets are below it)
 *   origin       `eris serve --push-dir` on a chroot store, through a loopback nginx reverse proxy that adds the edge
 *                secret (cloudflared's place; the same hop bench/closure.ts puts before the origin and nginx), streaming
 *                request bodies (proxy_request_buffering off, as cloudflared does)
 *   edge         the same origin behind the Worker under `wrangler dev --local`, with a write token (netrc),
 *                MAX_UPLOAD_BYTES=100000000 as on Cloudflare (closures only: the big path is over it for nix copy)
 *   do-nothing Worker   bench/lib/passthrough-worker.js under the same wrangler dev before the same origin:
 *                what wrangler dev itself costs nix copy's one-request-after-another upload (closures)
 *   eris push    `eris push` (one missing question, uploads several at once, the big path in parts)
 *                through the edge, when this checkout has the command: the packed client (`npm run build:cli`, built
 *                into the run's directory), as docs/push.md's CI examples and post-build hook run it; the report gives
 *                Node's start-up of it and of the project's TypeScript `eris` (`eris push --help`)
 *   eris push origin  the same client aimed at the same secret-adding proxy as `origin` (origin direct; its token is
 *                not checked there: the edge checks tokens, the origin trusts the edge secret the proxy adds)
 * The big path's file:// and eris push origin rows (issue #23's "≤ 3× file://") are BENCH_PUSH_BIG_ROUNDS
 * (default 5) alternating runs each, a fresh path per eris push run, and give the fastest of each (every run is in
 * the note): on this VM a run that writes 256 MiB right after another freed as much can take twice its time in the
 * kernel (file:// 0.22 s of system time in a first run, 0.9-1.0 s after a push round; bench/README.md), and the
 * fastest run is the one least disturbed, for both. Each of these runs starts BENCH_PUSH_SETTLE_MS (default 8000)
 * after the step before it, for both rows alike: the VM hands freed memory back to its host in the meantime.
 * file://, local store, do-nothing HTTP and origin get the same paths; each wrangler dev target and each eris push target
 * gets paths of its own.
 * Nix 2.26 (the chroot of test/helpers/modern-nix.ts, ERIS_MODERN_NIX_DIR) pushes closures and a big path of its own
 * from a store dir to file://, a local store dir, the do-nothing HTTP server and the origin (same proxy) with
 * BENCH_PUSH_MODERN=1 (off by default: they add minutes, see bench/README.md; the chroot is built when it is missing).
 * BENCH_PUSH_PROFILE=1 writes a CPU profile of the origin (bench/results/push-origin.cpuprofile) and prints
 * its heaviest functions; the origin's log gives each import's time.
 *
 *   npm run bench:push      # writes bench/results/push-latest.json; docs/performance.md shows it (bench/render.ts)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken } from '../origin/tokens/cli.ts';
import { NIX_FLAGS, nixEnv, runNix } from '../test/helpers/nix.ts';
import { addRandomPath, pushOriginStore } from './lib/push-origin.ts';
import { ERIS_CLI, freePort, startEdge, startOriginCli } from '../test/helpers/processes.ts';
import { ensureModernNix, modernNixBuilt, modernNixDir, runModernNix } from '../test/helpers/modern-nix.ts';
import { startDoNothingCache } from './lib/do-nothing-cache.ts';
import { startNginx, startPassthroughWorker, waitOk } from './lib/servers.ts';
import { stopProcess } from './lib/procs.ts';
import type { PushClient, PushResults, PushRow } from './lib/push-report.ts';
import { evaluatePushTargets, printPushReport } from './lib/push-report.ts';
import { topFunctions } from './lib/push-profile.ts';
import { buildPackedCli } from '../scripts/build-cli.ts';

const KIB = Number(process.env.BENCH_PUSH_KIB ?? 2);
const WIDE = (process.env.BENCH_PUSH_WIDE ?? '101,1001').split(',').map(Number).filter((n) => n > 1);
const BIG_MIB = Number(process.env.BENCH_PUSH_BIG_MIB ?? 256);
const BIG_ROUNDS = Math.max(1, Number(process.env.BENCH_PUSH_BIG_ROUNDS ?? 5));
/** A pause before each timed run of the big rows: what the previous step freed is handed back to the host meanwhile. */
const SETTLE_MS = Math.max(0, Number(process.env.BENCH_PUSH_SETTLE_MS ?? 8000));
const MAX_UPLOAD = 100_000_000;
const PROFILE = process.env.BENCH_PUSH_PROFILE === '1';
/** Which targets to run (BENCH_PUSH_TARGETS="file://,local store,origin" skips the edge); all by default. */
const ONLY = process.env.BENCH_PUSH_TARGETS?.split(',').map((t) => t.trim());
const wanted = (t: string) => !ONLY || ONLY.includes(t);
/** Nix 2.26's rows (BENCH_PUSH_MODERN=1; the chroot is built first when it is missing). */
const MODERN = process.env.BENCH_PUSH_MODERN === '1';
const SECRET = 'bench-push-edge-secret-0123456789';
const PUSH_NIX = new URL('../test/fixtures/push.nix', import.meta.url).pathname;
const RESULTS = new URL('./results/', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'eris-bench-push-'));
const env = nixEnv();

function buildWide(n: number, salt: string): string {
  return execFileSync('nix-build', [PUSH_NIX, '-A', 'wide', '--argstr', 'salt', salt, '--arg', 'n', String(n), '--arg', 'kib', String(KIB),
    '--no-out-link', '--max-jobs', '4', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

/** What the big path is: `built` (a build output, input-addressed; the default) or `added` (nix store add-file). */
const BIG_KIND = process.env.BENCH_PUSH_BIG_KIND ?? 'built';
if (BIG_KIND !== 'built' && BIG_KIND !== 'added') throw new Error(`BENCH_PUSH_BIG_KIND must be built or added, not ${BIG_KIND}`);

function buildBig(salt: string): string {
  return execFileSync('nix-build', [PUSH_NIX, '-A', 'big', '--argstr', 'salt', salt, '--arg', 'mib', String(BIG_MIB),
    '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

/** The big paths this run made in this machine's store, deleted at its end (a run makes about 10: 2.5 GB at 256 MiB). */
const bigPaths: string[] = [];
const made = (path: string) => (bigPaths.push(path), path);
const addBig = (name: string) => made(BIG_KIND === 'built' ? buildBig(name) : addRandomPath(dir, name, BIG_MIB));
/** The other kind's path, for the one push the eris push origin row's note gives of it. */
const addOtherBig = (name: string) => made(BIG_KIND === 'built' ? addRandomPath(dir, name, BIG_MIB) : buildBig(name));

function narBytes(path: string, recursive: boolean): number {
  const info = JSON.parse(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', ...(recursive ? ['-r'] : []), path], { env, encoding: 'utf8' })) as { narSize: number }[];
  return info.reduce((a, p) => a + p.narSize, 0);
}

async function timeCopy(url: string, paths: string[], extra: string[] = []): Promise<number> {
  const started = performance.now();
  const r = await runNix(['copy', '--to', url, ...paths, ...extra], { timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`nix copy --to ${url} failed:\n${r.stderr.slice(-3000)}`);
  return (performance.now() - started) / 1000;
}

/** Nix 2.26's `nix copy --from <store dir> --to <url>` in its chroot (the time includes entering the chroot, ~tens of ms). */
async function timeModernCopy(from: string, url: string, paths: string[], extra: string[] = []): Promise<number> {
  const started = performance.now();
  const r = await runModernNix(['copy', '--from', from, '--to', url, ...paths, ...extra], { timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`nix (2.26) copy --to ${url} failed:\n${r.stderr.slice(-3000)}`);
  return (performance.now() - started) / 1000;
}

/** `eris push` (the multi-part client) when this checkout has the command; undefined otherwise. */
function erisPushAvailable(): boolean {
  const r = spawnSync(process.execPath, [...ERIS_CLI, 'push', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0;
}

/** Median wall time of `node ARGS… push --help` (5 runs): Node starting a client and loading its push command. */
function startupSeconds(args: string[]): number {
  const times = Array.from({ length: 5 }, () => {
    const started = performance.now();
    const r = spawnSync(process.execPath, [...args, 'push', '--help'], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`${args.join(' ')} push --help failed: ${r.stderr}`);
    return (performance.now() - started) / 1000;
  }).sort((a, b) => a - b);
  return times[2]!;
}

/** Runs a command without blocking this process (its do-nothing HTTP server answers meanwhile): status, stdout, stderr. */
function runAsync(cmd: string, args: string[], o: { env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), o.timeoutMs);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/**
 * The command's wall time, and in the note its own count from the closure query on (the rest is Node starting
 * the CLI), the client's peak RSS (/usr/bin/time) and what the origin logged of its batches (how many, their
 * checks and imports). `url`: the edge, or the proxy before the origin (origin direct).
 */
async function timeErisPush(cli: string[], url: string, token: string, paths: string[], originLog: string): Promise<{ seconds: number; note: string }> {
  const logBefore = readFileSync(originLog, 'utf8').length;
  const extra = process.env.BENCH_PUSH_CLI_ARGS?.split(' ').filter(Boolean) ?? [];
  const started = performance.now();
  // Not spawnSync: this process goes on answering for its do-nothing HTTP server meanwhile.
  const r = await runAsync('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, ...cli, 'push', '--json', ...extra, '--edge-url', url, ...paths], {
    timeoutMs: 1_800_000, env: { ...env, ERIS_TOKEN: token, CI: 'true' },
  });
  const seconds = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`eris push failed:\n${(r.stderr || r.stdout).slice(-3000)}`);
  const inside = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number }).seconds;
  const rss = Number(/maxrss=(\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024;
  const batches = readFileSync(originLog, 'utf8').slice(logBefore).split('\n').filter((l) => l.includes('"msg":"push: batch"'))
    .map((l) => JSON.parse(l) as { paths: number; checkMs: number; importMs: number });
  const sum = (k: 'paths' | 'checkMs' | 'importMs') => batches.reduce((a, b) => a + b[k], 0);
  const origin = batches.length ? `; ${batches.length} batches of ${sum('paths')} paths, origin checks ${sum('checkMs')} ms, imports ${sum('importMs')} ms` : '';
  return { seconds, note: `${inside.toFixed(2)} s after start-up; client peak RSS ${rss.toFixed(0)} MiB${origin}` };
}

/** Seconds between the first and the last `push: imported` line of the origin's log, and the count. */
function importSpan(log: string): { imported: number; seconds: number } {
  const times = log.split('\n').filter((l) => l.includes('"msg":"push: imported"')).map((l) => Date.parse(JSON.parse(l).t as string));
  return { imported: times.length, seconds: times.length > 1 ? (Math.max(...times) - Math.min(...times)) / 1000 : 0 };
}

async function main() {
  const runStarted = performance.now();
  const loadAtStart = loadavg()[0]!;
  const { sec, root } = pushOriginStore(dir, 'bench-push-1');
  // Asked before the origin starts, of the same checkout (so the origin has the routes the client uses).
  const withErisPush = erisPushAvailable();
  // The eris push rows run the packed client (one JavaScript file), as runners and hooks do.
  const packed = join(dir, 'eris.mjs');
  const hasPacked = withErisPush;
  if (hasPacked) await buildPackedCli(packed);
  const pushCli = hasPacked ? [packed] : ERIS_CLI;
  const erisPushCli = withErisPush ? { packed: hasPacked, startup: { ...(hasPacked ? { packed: startupSeconds([packed]) } : {}), typescript: startupSeconds(ERIS_CLI) } } : undefined;
  const profDir = join(dir, 'prof');
  const originLog = join(dir, 'origin.log');
  const origin = await startOriginCli({
    root, keyFiles: [sec], edgeSecret: SECRET, extraArgs: ['--push-dir', join(dir, 'push')], logFile: originLog,
    env: PROFILE ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` } : {},
  });
  const edge = await startEdge({ originUrl: origin.url, edgeSecret: SECRET, vars: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD), PUSH_TIMEOUT_MS: '600000' } });
  // wrangler dev's own cost: the do-nothing Worker (bench/lib) under the same wrangler dev, before the same origin.
  const ptPort = await freePort();
  const passthrough = wanted('do-nothing Worker') ? startPassthroughWorker({ workDir: dir, port: ptPort, upstream: origin.url, edgeSecret: SECRET }) : undefined;
  if (passthrough) await waitOk('wrangler dev (do-nothing Worker)', `http://127.0.0.1:${ptPort}/nix-cache-info`, {}, 180_000, [passthrough]);
  const hopPort = await freePort();
  const hop = startNginx(dir, dir, await freePort(), [{ port: hopPort, upstream: origin.url, headers: { 'x-eris-edge-secret': SECRET } }]);
  await waitOk('nginx (the hop before the origin)', `http://127.0.0.1:${hopPort}/nix-cache-info`, {}, 30_000, [hop]);
  const proxy = { url: `http://127.0.0.1:${hopPort}` };
  const floor = await startDoNothingCache();
  const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'bench', { scopes: ['read', 'write'] });
  const netrc = join(dir, 'netrc');
  writeFileSync(netrc, `machine 127.0.0.1 login bench password ${token}\n`);

  const run = randomBytes(4).toString('hex');
  const rows: PushRow[] = [];
  const row = async (what: string, target: PushRow['target'], paths: number, bytes: number,
    time: () => Promise<number | { seconds: number; note: string } | undefined>, note?: string, client: PushClient = '2.8') => {
    if (!wanted(target)) return;
    // A failed row is recorded as such; the rest of the run goes on.
    const timed = await time().catch((e: Error) => {
      note = `failed: ${e.message.split('\n').filter(Boolean).slice(-1)[0]?.slice(0, 200)}`;
      return undefined;
    });
    const seconds = typeof timed === 'object' ? timed.seconds : timed;
    if (typeof timed === 'object') note = timed.note;
    rows.push({ what, target, ...(client === '2.8' ? {} : { client }), paths, bytes, seconds, note });
    console.error(`${what}${client === '2.8' ? '' : `, Nix ${client}`}, ${target}: ${seconds === undefined ? `not measured (${note})` : `${seconds.toFixed(2)} s${note ? ` (${note})` : ''}`}`);
  };
  const spans: Record<string, { imported: number; seconds: number }> = {};
  try {
    let i = 0;
    for (const n of WIDE) {
      const what = `${n} paths of ${KIB} KiB`;
      const a = buildWide(n, `${run}-${n}-a`);
      const b = wanted('edge') ? buildWide(n, `${run}-${n}-b`) : a;
      const bytes = narBytes(a, true);
      const fileCache = join(dir, `file-cache-${i}`);
      await row(what, 'file://', n, bytes, () => timeCopy(`file://${fileCache}?compression=zstd`, [a]));
      await row(what, 'local store', n, bytes, () => timeCopy(join(dir, `local-${i}`), [a], ['--no-check-sigs']));
      await row(what, 'do-nothing HTTP', n, bytes, () => timeCopy(`${floor.url}?compression=zstd`, [a]));
      const before = readFileSync(originLog, 'utf8').length;
      await row(what, 'origin', n, bytes, () => timeCopy(`${proxy.url}?compression=zstd`, [a]));
      spans[`${what}, origin`] = importSpan(readFileSync(originLog, 'utf8').slice(before));
      const before2 = readFileSync(originLog, 'utf8').length;
      await row(what, 'edge', n, bytes, () => timeCopy(`${edge.url}?compression=zstd`, [b], ['--option', 'netrc-file', netrc]));
      if (wanted('edge')) spans[`${what}, edge`] = importSpan(readFileSync(originLog, 'utf8').slice(before2));
      await row(what, 'do-nothing Worker', n, bytes, () => timeCopy(`http://127.0.0.1:${ptPort}?compression=zstd`, [wanted('do-nothing Worker') ? buildWide(n, `${run}-${n}-c`) : a]));
      if (withErisPush) await row(what, 'eris push', n, bytes, () => timeErisPush(pushCli, edge.url, token, [buildWide(n, `${run}-${n}-d`)], originLog));
      if (withErisPush) await row(what, 'eris push origin', n, bytes, () => timeErisPush(pushCli, proxy.url, token, [buildWide(n, `${run}-${n}-e`)], originLog));
      rmSync(fileCache, { recursive: true, force: true });
      rmSync(join(dir, `local-${i++}`), { recursive: true, force: true });
    }
    if (BIG_MIB > 0) {
      const what = `one ${BIG_MIB} MiB path`;
      const a = addBig(`big-${run}-a`);
      const bytes = narBytes(a, false);
      // The two rows of the ≤ 3× target, alternating (file://, eris push origin, file://, …), a fresh path per push.
      type Run = { seconds: number; note?: string } | Error;
      const fileRuns: Run[] = [];
      const pushRuns: Run[] = [];
      const timed = (f: () => Promise<number | { seconds: number; note: string }>): Promise<Run> =>
        f().then((t) => (typeof t === 'number' ? { seconds: t } : t), (e: Error) => e);
      const settle = () => new Promise((res) => setTimeout(res, SETTLE_MS));
      for (let r = 0; r < BIG_ROUNDS; r++) {
        await settle();
        if (wanted('file://')) fileRuns.push(await timed(() => timeCopy(`file://${join(dir, 'file-cache-big')}?compression=zstd`, [a])));
        rmSync(join(dir, 'file-cache-big'), { recursive: true, force: true });
        if (withErisPush && wanted('eris push origin')) {
          const p = addBig(`big-${run}-c${r}`);
          await settle();
          pushRuns.push(await timed(() => timeErisPush(pushCli, proxy.url, token, [p], originLog)));
        }
      }
      /** The fastest run, its note naming every run; the first failure fails the row. */
      const fastest = async (runs: Run[]) => {
        const failed = runs.find((x) => x instanceof Error);
        if (failed) throw failed;
        const ok = runs as { seconds: number; note?: string }[];
        const best = [...ok].sort((x, y) => x.seconds - y.seconds)[0]!;
        const all = ok.map((x) => x.seconds.toFixed(2)).join(', ');
        return { seconds: best.seconds, note: ok.length > 1 ? `fastest of ${ok.length} alternating runs (${all} s)${best.note ? `; that run: ${best.note}` : ''}` : best.note ?? '' };
      };
      await row(what, 'file://', 1, bytes, () => fastest(fileRuns));
      await row(what, 'local store', 1, bytes, () => timeCopy(join(dir, 'local-big'), [a], ['--no-check-sigs']));
      rmSync(join(dir, 'local-big'), { recursive: true, force: true });
      await row(what, 'do-nothing HTTP', 1, bytes, () => timeCopy(`${floor.url}?compression=zstd`, [a]));
      await row(what, 'origin', 1, bytes, () => timeCopy(`${proxy.url}?compression=zstd`, [a]));
      if (withErisPush) {
        await row(what, 'eris push', 1, bytes, () => timeErisPush(pushCli, edge.url, token, [addBig(`big-${run}-b`)], originLog));
        await row(what, 'eris push origin', 1, bytes, async () => {
          const best = await fastest(pushRuns);
          // One push of the other kind of path, for the note (not in the ratio): what a content-addressed path costs more.
          const other = await timed(() => timeErisPush(pushCli, proxy.url, token, [addOtherBig(`big-${run}-o`)], originLog));
          const kind = BIG_KIND === 'built' ? 'a content-addressed path (nix store add-file), which the daemon hashes once more on import' : 'a build output (input-addressed)';
          const said = other instanceof Error ? `failed: ${other.message.split('\n')[0]}` : `${other.seconds.toFixed(2)} s`;
          return { seconds: best.seconds, note: `${best.note}; one push of ${kind}: ${said}` };
        });
      } else await row(what, 'eris push', 1, bytes, async () => undefined, 'eris push is not in this checkout');
    }
    if (MODERN) {
      const modernStarted = performance.now();
      console.error(`Nix 2.26 rows (${await ensureModernNix()}, ${modernNixDir}):`);
      // Paths of their own (the origin has the 2.8 rows' already), in a store dir the chroot reads, filled by this machine's Nix.
      const src = join(dir, 'modern-src');
      const toSrc = (p: string) => execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', src, p], { env });
      const modernRows = async (what: string, paths: number, p: string, bytes: number, tag: string) => {
        const m = (target: PushRow['target'], time: () => Promise<number>) => row(what, target, paths, bytes, time, undefined, '2.26');
        await m('file://', () => timeModernCopy(src, `file://${join(dir, `modern-file-${tag}`)}?compression=zstd`, [p]));
        rmSync(join(dir, `modern-file-${tag}`), { recursive: true, force: true });
        await m('local store', () => timeModernCopy(src, join(dir, `modern-local-${tag}`), [p], ['--no-check-sigs']));
        rmSync(join(dir, `modern-local-${tag}`), { recursive: true, force: true });
        await m('do-nothing HTTP', () => timeModernCopy(src, `${floor.url}?compression=zstd`, [p]));
        const before = readFileSync(originLog, 'utf8').length;
        await m('origin', () => timeModernCopy(src, `${proxy.url}?compression=zstd`, [p]));
        if (wanted('origin')) spans[`${what}, origin, Nix 2.26`] = importSpan(readFileSync(originLog, 'utf8').slice(before));
      };
      for (const n of WIDE) {
        const a = buildWide(n, `${run}-${n}-m`);
        toSrc(a);
        await modernRows(`${n} paths of ${KIB} KiB`, n, a, narBytes(a, true), String(n));
      }
      if (BIG_MIB > 0) {
        const a = addBig(`big-${run}-m`);
        toSrc(a);
        await modernRows(`one ${BIG_MIB} MiB path`, 1, a, narBytes(a, false), 'big');
      }
      rmSync(src, { recursive: true, force: true });
      console.error(`Nix 2.26 rows took ${((performance.now() - modernStarted) / 1000).toFixed(0)} s (building their paths included)`);
    } else console.error(`Nix 2.26 rows skipped (BENCH_PUSH_MODERN=1 adds them${modernNixBuilt() ? `, with the chroot at ${modernNixDir}` : `; no chroot at ${modernNixDir} yet: ERIS_MODERN_NIX_DIR names a built one, else it is built first`})`);
  } finally {
    void floor.close();
    await stopProcess(hop);
    if (passthrough) await stopProcess(passthrough);
    await edge.stop();
    await origin.stop();
    // Nothing refers to them (no GC root: nix-build --no-out-link); what cannot be deleted is left to the GC.
    if (bigPaths.length) spawnSync('nix-store', ['--delete', ...bigPaths], { env, stdio: 'ignore' });
  }
  const results: PushResults = {
    when: new Date().toISOString(),
    commit: execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(),
    kibPerPath: KIB,
    rows,
    loadAverage: { start: loadAtStart, end: loadavg()[0]! },
    importSpans: spans,
    ...(erisPushCli ? { erisPushCli } : {}),
    elapsedSeconds: Math.round((performance.now() - runStarted) / 1000),
    targets: [],
  };
  if (PROFILE && existsSync(profDir)) {
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) {
      renameSync(join(profDir, file), join(RESULTS, 'push-origin.cpuprofile'));
      results.profileTop = topFunctions(join(RESULTS, 'push-origin.cpuprofile'));
    }
  }
  results.targets = evaluatePushTargets(results);
  printPushReport(results, (s) => process.stdout.write(s));
  writeFileSync(join(RESULTS, 'push-latest.json'), JSON.stringify(results, null, 2) + '\n');
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
