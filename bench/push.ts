/**
 * Push throughput (issue #11): real `nix copy --to <url>?compression=zstd` of
 *   - a 100-path closure (each path BENCH_PUSH_KIB KiB of random bytes, 256 by default), twice: as a chain
 *     (each path refers to the one before, so Nix pushes one path at a time) and wide (99 paths and one
 *     referring to them all, so Nix pushes many at once), and
 *   - one 90 MB path (BENCH_PUSH_BIG_MB),
 * from this machine's store, to three targets measured in the same run:
 *   file://      a local binary cache directory: the client's own cost (NAR, zstd, hashing), no network, no import — the reference
 *   origin       `eris serve --push-dir` on a chroot store, through a loopback proxy that adds the edge secret (cloudflared's place)
 *   edge         the same origin behind the Worker under `wrangler dev --local`, with a write token (netrc)
 * Every target gets paths of its own (a fresh salt), so nothing is skipped as already there.
 * MB/s is NAR bytes (NarSize summed) over the wall time of `nix copy`; ×file is the ratio to file://.
 *
 *   npm run bench:push      # writes bench/results/push-latest.json
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, request } from 'node:http';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken } from '../origin/tokens/cli.ts';
import { NIX_FLAGS, nixEnv, runNix } from '../test/helpers/nix.ts';
import { startEdge, startOriginCli } from '../test/helpers/processes.ts';

const KIB = Number(process.env.BENCH_PUSH_KIB ?? 256);
const PATHS = Number(process.env.BENCH_PUSH_PATHS ?? 100);
const BIG_MB = Number(process.env.BENCH_PUSH_BIG_MB ?? 90);
const SECRET = 'bench-push-edge-secret-0123456789';
const PUSH_NIX = new URL('../test/fixtures/push.nix', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'eris-bench-push-'));
const env = nixEnv();

function buildClosure(attr: 'chain' | 'wide', salt: string): string {
  return execFileSync('nix-build', [PUSH_NIX, '-A', attr, '--argstr', 'salt', salt, '--arg', 'n', String(PATHS), '--arg', 'kib', String(KIB),
    '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

function addBig(name: string): string {
  const file = join(dir, name);
  const fd = openSync(file, 'w');
  for (let left = BIG_MB * 1_000_000; left > 0; left -= 1 << 20) writeSync(fd, randomBytes(Math.min(left, 1 << 20)));
  closeSync(fd);
  return execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', file], { env, encoding: 'utf8' }).trim();
}

function narBytes(paths: string[], recursive: boolean): number {
  const info = JSON.parse(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', ...(recursive ? ['-r'] : []), ...paths], { env, encoding: 'utf8' })) as { narSize: number }[];
  return info.reduce((a, p) => a + p.narSize, 0);
}

async function timeCopy(url: string, paths: string[], netrc?: string): Promise<number> {
  const started = performance.now();
  const r = await runNix(['copy', '--to', url, ...paths, ...(netrc ? ['--option', 'netrc-file', netrc] : [])], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`nix copy --to ${url} failed:\n${r.stderr}`);
  return (performance.now() - started) / 1000;
}

/** cloudflared's place: adds the edge secret on the way to the origin. */
async function secretProxy(target: string): Promise<{ url: string; close(): void }> {
  const t = new URL(target);
  const server = createServer((req, res) => {
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host, 'x-eris-edge-secret': SECRET } }, (upRes) => {
      res.writeHead(upRes.statusCode!, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

async function main() {
  const sec = join(dir, 'cache.sec');
  execFileSync('nix-store', ['--generate-binary-cache-key', 'bench-push-1', sec, join(dir, 'cache.pub')], { env });
  const root = join(dir, 'root');
  // An empty chroot store: nix copy of nothing still creates it; one tiny path makes it a store with a DB.
  const seedFile = join(dir, 'seed');
  writeFileSync(seedFile, 'seed\n');
  const seed = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', seedFile], { env, encoding: 'utf8' }).trim();
  execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, seed], { env });
  const origin = await startOriginCli({ root, keyFiles: [sec], edgeSecret: SECRET, extraArgs: ['--push-dir', join(dir, 'push')] });
  const edge = await startEdge({ originUrl: origin.url, edgeSecret: SECRET, vars: { MAX_UPLOAD_BYTES: String(200_000_000), PUSH_TIMEOUT_MS: '600000' } });
  const proxy = await secretProxy(origin.url);
  const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'bench', { scopes: ['read', 'write'] });
  const netrc = join(dir, 'netrc');
  writeFileSync(netrc, `machine 127.0.0.1 login bench password ${token}\n`);
  mkdirSync(join(dir, 'file-cache'));

  const targets = [
    { name: 'file://', url: `file://${join(dir, 'file-cache')}?compression=zstd` },
    { name: 'origin', url: `${proxy.url}?compression=zstd` },
    { name: 'edge', url: `${edge.url}?compression=zstd`, netrc },
  ];
  const run = randomBytes(4).toString('hex');
  const rows: { target: string; chainSeconds: number; chainMBps: number; wideSeconds: number; wideMBps: number; bigMBps: number; bigSeconds: number }[] = [];
  let closureBytes = 0;
  let bigBytes = 0;
  try {
    for (const t of targets) {
      const chain = buildClosure('chain', `${run}-${t.name}`);
      const wide = buildClosure('wide', `${run}-${t.name}`);
      const big = addBig(`big-${run}-${t.name.replace(/\W/g, '')}`);
      closureBytes = narBytes([chain], true);
      bigBytes = narBytes([big], false);
      const wideBytes = narBytes([wide], true);
      const chainSeconds = await timeCopy(t.url, [chain], t.netrc);
      const wideSeconds = await timeCopy(t.url, [wide], t.netrc);
      const bigSeconds = await timeCopy(t.url, [big], t.netrc);
      rows.push({ target: t.name, chainSeconds, chainMBps: closureBytes / 1e6 / chainSeconds, wideSeconds, wideMBps: wideBytes / 1e6 / wideSeconds, bigSeconds, bigMBps: bigBytes / 1e6 / bigSeconds });
      console.error(`${t.name}: chain ${chainSeconds.toFixed(2)} s, wide ${wideSeconds.toFixed(2)} s, big ${bigSeconds.toFixed(2)} s`);
    }
  } finally {
    proxy.close();
    await edge.stop();
    await origin.stop();
  }
  const ref = rows[0]!;
  const fmt = (n: number) => n.toFixed(n < 10 ? 2 : 1);
  console.log(`push: ${PATHS}-path closure (${fmt(closureBytes / 1e6)} MB NAR) and one ${fmt(bigBytes / 1e6)} MB path, nix copy --to …?compression=zstd`);
  console.log('| target | chain s | chain MB/s | × file:// | wide s | wide MB/s | × file:// | 90 MB path s | MB/s | × file:// |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(`| ${r.target} | ${fmt(r.chainSeconds)} | ${fmt(r.chainMBps)} | ${(r.chainMBps / ref.chainMBps).toFixed(2)} | ` +
      `${fmt(r.wideSeconds)} | ${fmt(r.wideMBps)} | ${(r.wideMBps / ref.wideMBps).toFixed(2)} | ` +
      `${fmt(r.bigSeconds)} | ${fmt(r.bigMBps)} | ${(r.bigMBps / ref.bigMBps).toFixed(2)} |`);
  }
  const out = new URL('./results/push-latest.json', import.meta.url).pathname;
  writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), paths: PATHS, kibPerPath: KIB, closureBytes, bigBytes, rows }, null, 2) + '\n');
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
