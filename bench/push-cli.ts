/**
 * `eris push` of one large path (issue #23: 256 MiB), in the same run as its references:
 *   file:// zstd   `nix copy --to file://…?compression=zstd` (what bench/push.ts compares against)
 *   file:// none   `nix copy --to file://…?compression=none` (the same bytes eris push sends: the NAR as is)
 *   eris push → origin   straight to `eris serve` (through a proxy adding the edge secret: cloudflared's place)
 *   eris push → edge     through the Worker under `wrangler dev --local`, MAX_UPLOAD_BYTES=100000000
 * Each target gets a path of its own (fresh random bytes). The eris push rows include the import (the
 * origin hashes the NAR, Nix copies it into a chroot store); the client's peak RSS is measured too
 * (memory must not grow with the NAR: about jobs × part size).
 *
 *   npm run bench:push-cli      # BENCH_PUSH_CLI_MIB=256; writes bench/results/push-cli-latest.json
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken } from '../origin/tokens/cli.ts';
import { NIX_FLAGS, nixEnv, runNix } from '../test/helpers/nix.ts';
import { ERIS_CLI, startEdge, startOriginCli } from '../test/helpers/processes.ts';
import { startRecordingProxy } from '../test/helpers/recording-proxy.ts';
import { addRandomPath } from './lib/push-origin.ts';

const MIB = Number(process.env.BENCH_PUSH_CLI_MIB ?? 256);
const MAX_UPLOAD = 100_000_000;
const SECRET = 'bench-push-cli-edge-secret-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'eris-bench-push-cli-'));
const env = nixEnv();

function addBig(name: string): { path: string; narSize: number } {
  const path = addRandomPath(dir, name, MIB);
  const [info] = JSON.parse(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', path], { env, encoding: 'utf8' })) as { narSize: number }[];
  return { path, narSize: info!.narSize };
}

async function timeCopy(url: string, path: string): Promise<number> {
  const started = performance.now();
  const r = await runNix(['copy', '--to', url, path], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`nix copy --to ${url} failed:\n${r.stderr}`);
  return (performance.now() - started) / 1000;
}

/** `eris push` under /usr/bin/time: wall seconds and the client's peak RSS. */
function timeErisPush(url: string, token: string, path: string): Promise<{ seconds: number; rssMiB: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, ...ERIS_CLI, 'push', '--edge-url', url, path], {
      env: { ...env, ERIS_TOKEN: token }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.once('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) return reject(new Error(`eris push to ${url} failed:\n${err}`));
      resolve({ seconds, rssMiB: Number(/maxrss=(\d+)/.exec(err)?.[1] ?? 0) / 1024 });
    });
  });
}

async function main() {
  const sec = join(dir, 'cache.sec');
  execFileSync('nix-store', ['--generate-binary-cache-key', 'bench-push-cli-1', sec, join(dir, 'cache.pub')], { env });
  const root = join(dir, 'root');
  execFileSync('nix-store', ['--store', root, '--init'], { env });
  const origin = await startOriginCli({ root, keyFiles: [sec], edgeSecret: SECRET, extraArgs: ['--push-dir', join(dir, 'push')] });
  const edge = await startEdge({ originUrl: origin.url, edgeSecret: SECRET, vars: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD), PUSH_TIMEOUT_MS: '600000' } })
    .catch(async (e: unknown) => {
      await origin.stop();
      throw e;
    });
  const proxy = await startRecordingProxy(origin.url, { headers: { 'x-eris-edge-secret': SECRET } });
  const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'bench', { scopes: ['read', 'write'] });
  mkdirSync(join(dir, 'zstd'));
  mkdirSync(join(dir, 'none'));
  const run = randomBytes(4).toString('hex');
  const rows: { target: string; seconds: number; mbps: number; clientRssMiB?: number }[] = [];
  let narSize = 0;
  try {
    const targets: [string, (p: string) => Promise<{ seconds: number; rssMiB?: number }>][] = [
      ['nix copy --to file:// (zstd)', async (p) => ({ seconds: await timeCopy(`file://${join(dir, 'zstd')}?compression=zstd`, p) })],
      ['nix copy --to file:// (none)', async (p) => ({ seconds: await timeCopy(`file://${join(dir, 'none')}?compression=none`, p) })],
      ['eris push → origin', (p) => timeErisPush(proxy.url, token, p)],
      ['eris push → edge (wrangler dev, MAX_UPLOAD_BYTES=1e8)', (p) => timeErisPush(edge.url, token, p)],
    ];
    for (const [i, [name, measure]] of targets.entries()) {
      const big = addBig(`big-${run}-${i}`);
      narSize = big.narSize;
      const r = await measure(big.path);
      rows.push({ target: name, seconds: r.seconds, mbps: big.narSize / 1e6 / r.seconds, clientRssMiB: r.rssMiB });
      console.error(`${name}: ${r.seconds.toFixed(2)} s${r.rssMiB ? `, client peak RSS ${r.rssMiB.toFixed(0)} MiB` : ''}`);
    }
  } finally {
    void proxy.close();
    await edge.stop();
    await origin.stop();
  }
  const ref = rows[0]!;
  console.log(`eris push: one ${(narSize / 1024 / 1024).toFixed(0)} MiB path (NAR), ×file:// = time / nix copy --to file://?compression=zstd's`);
  console.log('| target | s | MB/s | × file:// (zstd) | client peak RSS |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.target} | ${r.seconds.toFixed(2)} | ${r.mbps.toFixed(1)} | ${(r.seconds / ref.seconds).toFixed(2)} | ${r.clientRssMiB ? `${r.clientRssMiB.toFixed(0)} MiB` : ''} |`);
  const out = new URL('./results/push-cli-latest.json', import.meta.url).pathname;
  writeFileSync(out, JSON.stringify({ when: new Date().toISOString(), narSize, maxUploadBytes: MAX_UPLOAD, rows }, null, 2) + '\n');
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
