/**
 * Where a small-path push waits (issue #23): one `nix copy --to` of a wide closure to the origin direct
 * (through the edge-secret proxy) and through `wrangler dev`, with the Nix client under
 * `strace -f -ttt -e trace=network`. For each request the client sends: when its first byte left, when
 * the first byte of the answer came, and the gap since the previous answer (the client's own time); and
 * per request at a timing proxy in front of the origin, and the edge's own request log.
 * TRACE_TARGETS (origin,edge by default; also passthrough: the do-nothing Worker of bench/lib under the
 * same wrangler dev, erispush: `eris push` of the same closure through the edge), TRACE_STRACE=0 runs
 * Nix without strace (its timing only), TRACE_KEEP=1 keeps the traces and logs.
 *
 *   node bench/push-trace.ts [N]     # default 101 paths of 2 KiB; per-kind medians and totals
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken } from '../origin/tokens/cli.ts';
import { NIX_FLAGS, nixEnv } from '../test/helpers/nix.ts';
import { pushOriginStore } from './lib/push-origin.ts';
import { ERIS_CLI, edgeLogLines, freePort, startEdge, startOriginCli } from '../test/helpers/processes.ts';
import { startPassthroughWorker, waitOk } from './lib/servers.ts';
import { stopProcess, type Started } from './lib/procs.ts';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

const N = Number(process.argv[2] ?? 101);
const TARGETS = (process.env.TRACE_TARGETS ?? 'origin,edge').split(',');
const STRACE = process.env.TRACE_STRACE !== '0';
const SECRET = 'bench-push-edge-secret-0123456789';
const PUSH_NIX = new URL('../test/fixtures/push.nix', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'eris-push-trace-'));
const env = nixEnv();

function buildWide(salt: string): string {
  return execFileSync('nix-build', [PUSH_NIX, '-A', 'wide', '--argstr', 'salt', salt, '--arg', 'n', String(N), '--arg', 'kib', '2',
    '--no-out-link', '--max-jobs', '4', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

interface Req { fd: string; sent: number; line: string; answered?: number; status?: string }

/** Requests and answers from strace's sendto/recvfrom lines (curl talks plain HTTP/1.1 here). */
function parse(trace: string): Req[] {
  const reqs: Req[] = [];
  const open = new Map<string, Req>();
  for (const l of trace.split('\n')) {
    const m = /^\d+\s+(\d+\.\d+) (sendto|recvfrom|sendmsg|write)\((\d+), "(.*?)"/.exec(l);
    if (!m) continue;
    const [, t, call, fd, data] = m;
    const at = Number(t);
    if (call === 'sendto' || call === 'sendmsg' || call === 'write') {
      const rl = /^(GET|PUT|HEAD|POST) (\S+)/.exec(data!);
      if (rl) {
        const r: Req = { fd: fd!, sent: at, line: `${rl[1]} ${rl[2]!.replace(/[0-9a-z]{32,52}/, 'H')}` };
        reqs.push(r);
        open.set(fd!, r);
      }
    } else {
      const r = open.get(fd!);
      const st = /^HTTP\/1\.1 (\d+)/.exec(data!);
      if (r && st && st[1] !== '100' && r.answered === undefined) {
        r.answered = at;
        r.status = st[1];
      }
    }
  }
  return reqs;
}

function report(name: string, seconds: number, reqs: Req[]) {
  const kinds = new Map<string, number[]>();
  const gaps: number[] = [];
  let prevAnswer: number | undefined;
  // Nix asks for every narinfo at once (several connections), then uploads one path at a time: the client's
  // own time is measured in that sequential part, from the first upload on.
  const uploads = reqs.findIndex((r) => !r.line.startsWith('GET'));
  reqs.forEach((r, i) => {
    const kind = r.line.replace(/ \/.*?([^/]*)$/, (_s, last: string) => ` ${last.replace(/^H/, '').replace(/^\./, '*.') || '/'}`);
    if (r.answered !== undefined) (kinds.get(kind) ?? kinds.set(kind, []).get(kind)!).push((r.answered - r.sent) * 1000);
    if (i < uploads || uploads < 0) return;
    if (prevAnswer !== undefined) gaps.push((r.sent - prevAnswer) * 1000);
    if (r.answered !== undefined) prevAnswer = r.answered;
  });
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  console.log(`\n${name}: ${N} paths in ${seconds.toFixed(2)} s, ${reqs.length} requests`);
  for (const [k, v] of kinds) console.log(`  ${k.padEnd(28)} ${String(v.length).padStart(5)} × median ${med(v).toFixed(1).padStart(6)} ms, total ${(sum(v) / 1000).toFixed(2)} s`);
  if (uploads > 0) console.log(`  narinfo queries ${((reqs[uploads]!.sent - reqs[0]!.sent)).toFixed(2)} s, uploads ${((reqs.at(-1)!.answered ?? reqs.at(-1)!.sent) - reqs[uploads]!.sent).toFixed(2)} s`);
  console.log(`  uploads: client between an answer and its next request: median ${med(gaps).toFixed(1)} ms, total ${(sum(gaps) / 1000).toFixed(2)} s`);
}

async function traced(url: string, path: string, extra: string[]): Promise<{ seconds: number; reqs: Req[] }> {
  const out = join(dir, `trace-${randomBytes(3).toString('hex')}`);
  const cache = mkdtempSync(join(tmpdir(), 'eris-nix-cache-'));
  const started = performance.now();
  const code = await new Promise<number | null>((resolve) => {
    const nix = ['nix', ...NIX_FLAGS, 'copy', '--to', url, path, ...extra];
    const argv = STRACE ? ['strace', '-f', '-ttt', '-s', '200', '-e', 'trace=network,write', '-o', out, ...nix] : nix;
    const child = spawn(argv[0]!, argv.slice(1),
      { env: { ...env, XDG_CACHE_HOME: cache }, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', resolve);
  });
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`nix copy to ${url} failed`);
  rmSync(cache, { recursive: true, force: true });
  return { seconds, reqs: STRACE ? parse(readFileSync(out, 'utf8')) : [] };
}

interface Leg { method: string; url: string; start: number; headers?: number; end?: number }

/** A pass-through proxy in front of the origin that times each request: arrival, upstream headers, end. */
async function timingProxy(target: string, add: Record<string, string> = {}) {
  const t = new URL(target);
  const legs: Leg[] = [];
  const server = createServer((req, res) => {
    const leg: Leg = { method: req.method!, url: req.url!, start: performance.now() };
    legs.push(leg);
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host, ...add } }, (upRes) => {
      leg.headers = performance.now();
      res.writeHead(upRes.statusCode!, upRes.headers);
      upRes.pipe(res);
      res.on('finish', () => (leg.end = performance.now()));
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, legs, close: () => server.close() };
}

function legReport(name: string, legs: Leg[]) {
  const kinds = new Map<string, number[]>();
  for (const l of legs) {
    if (l.end === undefined) continue;
    const kind = `${l.method} ${l.url.includes('/nar/') ? 'nar' : l.url.endsWith('.narinfo') ? 'narinfo' : l.url}`;
    (kinds.get(kind) ?? kinds.set(kind, []).get(kind)!).push(l.end - l.start);
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
  console.log(`  ${name}:`);
  for (const [k, v] of kinds) console.log(`    ${k.padEnd(26)} ${String(v.length).padStart(5)} × median ${med(v).toFixed(1).padStart(6)} ms, total ${(v.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s`);
}

async function main() {
  const { sec, root } = pushOriginStore(dir, 'bench-trace-1');
  const origin = await startOriginCli({ root, keyFiles: [sec], edgeSecret: SECRET, extraArgs: ['--push-dir', join(dir, 'push')], logFile: join(dir, 'origin.log') });
  const proxy = await timingProxy(origin.url, { 'x-eris-edge-secret': SECRET });
  const behindEdge = await timingProxy(origin.url);
  const edge = TARGETS.includes('edge') ? await startEdge({ originUrl: behindEdge.url, edgeSecret: SECRET }) : undefined;
  const behindPassthrough = await timingProxy(origin.url);
  let passthrough: Started | undefined;
  if (TARGETS.includes('passthrough')) {
    const port = await freePort();
    passthrough = startPassthroughWorker({ workDir: dir, port, upstream: behindPassthrough.url, edgeSecret: SECRET });
    await waitOk('wrangler dev (do-nothing Worker)', `http://127.0.0.1:${port}/nix-cache-info`, {}, 180_000, [passthrough]);
    (passthrough as Started & { url: string }).url = `http://127.0.0.1:${port}`;
  }
  try {
    const run = randomBytes(4).toString('hex');
    if (TARGETS.includes('origin')) {
      const r = await traced(`${proxy.url}?compression=zstd`, buildWide(`${run}-o`), []);
      report('origin direct', r.seconds, r.reqs);
      legReport('at the proxy before the origin', proxy.legs);
    }
    if (edge) {
      const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'trace', { scopes: ['read', 'write'] });
      writeFileSync(join(dir, 'netrc'), `machine 127.0.0.1 login trace password ${token}\n`);
      const edgeReport = (title: string, from: number, legsFrom: number) => {
        legReport(`between the edge and the origin (${title})`, behindEdge.legs.slice(legsFrom));
        const lines = edgeLogLines(edge.output()).slice(from).filter((l) => l.method !== undefined);
        const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
        const byKind = new Map<string, { ms: number[]; origin: number[] }>();
        for (const l of lines) {
          const p = String(l.path);
          const kind = `${l.method} ${p.includes('/nar/') ? 'nar' : p.endsWith('.narinfo') ? 'narinfo' : p.replace(/[0-9a-f]{32}/, 'ID')}`;
          const k = byKind.get(kind) ?? byKind.set(kind, { ms: [], origin: [] }).get(kind)!;
          k.ms.push(Number(l.ms));
          const tries = l.tries as { ms: number }[] | undefined;
          if (tries?.[0]) k.origin.push(tries[0].ms);
        }
        console.log(`  edge log (${title}; ms: whole request in the Worker; origin: to the origin answer):`);
        for (const [k, v] of byKind) console.log(`    ${k.padEnd(26)} ${String(v.ms.length).padStart(5)} × median ${med(v.ms).toFixed(1)} ms, origin ${med(v.origin).toFixed(1)} ms`);
      };
      const r = await traced(`${edge.url}?compression=zstd`, buildWide(`${run}-e`), ['--option', 'netrc-file', join(dir, 'netrc')]);
      report('through wrangler dev', r.seconds, r.reqs);
      edgeReport('nix copy', 0, 0);
      if (TARGETS.includes('erispush')) {
        const path = buildWide(`${run}-x`);
        const [logFrom, legsFrom] = [edgeLogLines(edge.output()).length, behindEdge.legs.length];
        const started = performance.now();
        const x = spawnSync(process.execPath, [...ERIS_CLI, 'push', '--json', '--edge-url', edge.url, path], { encoding: 'utf8', env: { ...env, ERIS_TOKEN: token, CI: 'true' } });
        if (x.status !== 0) throw new Error(x.stderr);
        const inside = (JSON.parse(x.stdout.trim().split('\n').pop()!) as { seconds: number }).seconds;
        console.log(`\neris push through wrangler dev: ${N} paths in ${((performance.now() - started) / 1000).toFixed(2)} s (${inside.toFixed(2)} s after start-up)`);
        edgeReport('eris push', logFrom, legsFrom);
      }
    }
    if (passthrough) {
      const r = await traced(`${(passthrough as Started & { url: string }).url}?compression=zstd`, buildWide(`${run}-p`), []);
      report('through the do-nothing Worker under wrangler dev', r.seconds, r.reqs);
      legReport('between that Worker and the origin', behindPassthrough.legs);
    }
    if (process.env.TRACE_KEEP) console.log(`kept ${dir}`);
  } finally {
    await edge?.stop();
    if (passthrough) await stopProcess(passthrough);
    behindPassthrough.close();
    proxy.close();
    behindEdge.close();
    await origin.stop();
    if (!process.env.TRACE_KEEP) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
