/**
 * Bounded compression (issue 15) with the real origin process, real xz and real Nix: concurrent
 * requests for one compressed NAR share one compression; distinct ones never run more compressors
 * than compression_max, the rest wait or get 503 + Retry-After; uncompressed NARs are not held up;
 * a failed compression fails every request sharing it; memory stays bounded with 24 clients.
 * Small NARs (0.25–2 MiB of random bytes) keep it fast: the properties do not need large ones.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/signing.ts';
import { parseNarInfo } from '../../shared/narinfo.ts';
import { narDump, nixEnv, nixMissing, NIX_FLAGS, runNix } from '../helpers/nix.ts';
import { startOriginCli, type OriginProc } from '../helpers/processes.ts';

const SECRET = 'compression-edge-secret-0123456789';
const MiB = 1024 * 1024;

/** Every process below `pid` (cluster workers, xz children), from /proc. */
function descendants(pid: number): { pid: number; comm: string; rss: number }[] {
  const parent = new Map<number, number>();
  const info = new Map<number, { comm: string; rss: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      parent.set(Number(d), Number(fields[1]));
      info.set(Number(d), { comm: stat.slice(stat.indexOf('(') + 1, close), rss: Number(fields[21]) * 4096 });
    } catch {}
  }
  const out: { pid: number; comm: string; rss: number }[] = [];
  const walk = (p: number) => {
    for (const [child, par] of parent) if (par === p) {
      out.push({ pid: child, ...info.get(child)! });
      walk(child);
    }
  };
  walk(pid);
  return out;
}

function rssOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  } catch {
    return 0;
  }
}

/** Samples the origin's process tree every 25 ms: the most xz processes at once, peak RSS. */
function sampler(origin: OriginProc) {
  const peak = { xz: 0, originRss: 0, totalRss: 0 };
  const timer = setInterval(() => {
    const tree = descendants(origin.child.pid!);
    const xz = tree.filter((p) => p.comm === 'xz');
    const nodes = [origin.child.pid!, ...tree.filter((p) => p.comm !== 'xz').map((p) => p.pid)];
    const originRss = Math.max(...nodes.map(rssOf));
    peak.xz = Math.max(peak.xz, xz.length);
    peak.originRss = Math.max(peak.originRss, originRss);
    peak.totalRss = Math.max(peak.totalRss, nodes.reduce((a, p) => a + rssOf(p), 0) + xz.reduce((a, p) => a + p.rss, 0));
  }, 25);
  return { peak, stop: () => clearInterval(timer) };
}

const xzDecompress = (b: Buffer) => execFileSync('xz', ['-dc'], { input: b, maxBuffer: 1 << 28 });

describe.skipIf(nixMissing)('bounded compression', () => {
  let dir: string;
  let root: string;
  let keyFile: string;
  let publicKey: string;
  let origin: OriginProc | undefined;
  const paths: Record<string, string> = {};
  let closureTop: string;
  let closure: string[];
  const hashOf = (p: string) => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);

  async function startOrigin(config: string, env: NodeJS.ProcessEnv = {}): Promise<OriginProc> {
    await origin?.stop();
    const file = join(dir, `origin-${Date.now()}.toml`);
    writeFileSync(file, config);
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      origin = await startOriginCli({ root, keyFiles: [keyFile], edgeSecret: SECRET, extraArgs: ['--config', file] });
    } finally {
      for (const k of Object.keys(env)) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
    return origin;
  }
  const get = (path: string, init: RequestInit = {}) =>
    fetch(origin!.url + path, { ...init, headers: { 'x-eris-edge-secret': SECRET }, signal: AbortSignal.timeout(120_000) });
  const narUrl = async (storePath: string) => '/' + parseNarInfo(await (await get(`/${hashOf(storePath)}.narinfo`)).text()).url;
  const metric = async (name: string) => {
    const text = await (await get('/metrics')).text();
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  };
  const cacheEntries = (cacheDir: string) => readdirSync(cacheDir).filter((f) => /\.nar\.xz$/.test(f));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'eris-compression-'));
    root = join(dir, 'root');
    const src = join(dir, 'src');
    mkdirSync(src);
    const files = { shared: 2 * MiB, ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`distinct-${i}`, MiB / 4])) };
    for (const [name, size] of Object.entries(files)) writeFileSync(join(src, `eris-${name}`), randomBytes(size));
    const added = execFileSync('nix-store', ['--add', ...Object.keys(files).map((n) => join(src, `eris-${n}`))], { env: nixEnv(), encoding: 'utf8' }).trim().split('\n');
    Object.keys(files).forEach((n, i) => (paths[n] = added[i]!));
    // A closure of 41 paths: 40 leaves (64 KiB each, compressible) and a top referring to all of them.
    const nix = join(dir, 'many.nix');
    writeFileSync(nix, `let
      leaf = i: builtins.toFile "eris-many-leaf-\${toString i}" (builtins.concatStringsSep "\\n" (builtins.genList (j: builtins.hashString "sha256" "\${toString i}-\${toString j}") 1000));
      leaves = builtins.genList leaf 40;
    in derivation { name = "eris-many-top"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \${builtins.concatStringsSep " " leaves} > $out" ]; }`);
    closureTop = execFileSync('nix-build', [nix, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env: nixEnv(), encoding: 'utf8' }).trim();
    closure = execFileSync('nix-store', ['-qR', closureTop], { env: nixEnv(), encoding: 'utf8' }).trim().split('\n');
    execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, ...added, closureTop], { env: nixEnv(), stdio: 'pipe' });
    const kp = generateKeyPair('compression-test-1');
    keyFile = join(dir, 'key.sec');
    writeFileSync(keyFile, kp.secret);
    publicKey = kp.public;
  }, 120_000);
  afterEach(async () => {
    await origin?.stop();
    origin = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('16 concurrent requests for one xz NAR: one compression, identical bytes that are exactly the NAR, one cache entry', async () => {
    const cacheDir = join(dir, 'cache-flight');
    await startOrigin(`compression = "xz"\nnar_cache_dir = "${cacheDir}"\n`);
    const url = await narUrl(paths.shared!);
    const s = sampler(origin!);
    const t0 = performance.now();
    const firstByte: number[] = [];
    const bodies = await Promise.all(Array.from({ length: 16 }, async () => {
      const res = await get(url);
      expect(res.status).toBe(200);
      const parts: Buffer[] = [];
      for await (const chunk of res.body!) {
        if (!parts.length) firstByte.push(performance.now() - t0);
        parts.push(Buffer.from(chunk));
      }
      return Buffer.concat(parts);
    }));
    const elapsed = performance.now() - t0;
    s.stop();
    const expected = narDump(paths.shared!, root);
    for (const b of bodies) expect(b.equals(bodies[0]!)).toBe(true);
    expect(xzDecompress(bodies[0]!).equals(expected)).toBe(true);
    expect(s.peak.xz).toBe(1);
    expect(await metric('eris_compressions_started_total')).toBe(1);
    expect(cacheEntries(cacheDir)).toHaveLength(1);
    // Reading behind the writer: every client has its first byte long before the compression ends.
    console.log(`single flight, 16 clients, 2 MiB NAR: first bytes after ${Math.round(Math.min(...firstByte))}–${Math.round(Math.max(...firstByte))} ms, all done after ${Math.round(elapsed)} ms`);
  });

  it('16 concurrent requests through two cluster workers: still one compression', async () => {
    const cacheDir = join(dir, 'cache-cluster');
    await startOrigin(`compression = "xz"\nnar_cache_dir = "${cacheDir}"\nworkers = 2\n`);
    const url = await narUrl(paths.shared!);
    const s = sampler(origin!);
    const bodies = await Promise.all(Array.from({ length: 16 }, async () => Buffer.from(await (await get(url)).arrayBuffer())));
    s.stop();
    const expected = narDump(paths.shared!, root);
    for (const b of bodies) expect(xzDecompress(b).equals(expected)).toBe(true);
    expect(s.peak.xz).toBe(1);
    expect(await metric('eris_compressions_started_total')).toBe(1);
    expect(cacheEntries(cacheDir)).toHaveLength(1);
  });

  it('a compression that fails fails every request sharing it — a broken body, never a clean short one — and caches nothing', async () => {
    const cacheDir = join(dir, 'cache-fail');
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    // An xz that writes some output, then dies.
    writeFileSync(join(bin, 'xz'), '#!/bin/sh\nhead -c 300000 /dev/urandom\nsleep 0.3\nexit 3\n');
    chmodSync(join(bin, 'xz'), 0o755);
    await startOrigin(`compression = "xz"\nnar_cache_dir = "${cacheDir}"\n`, { PATH: `${bin}:${process.env.PATH}` });
    const url = await narUrl(paths.shared!);
    const outcomes = await Promise.all(Array.from({ length: 8 }, async () => {
      try {
        const res = await get(url);
        await res.arrayBuffer();
        return `clean end, status ${res.status}`;
      } catch {
        return 'broken';
      }
    }));
    expect(outcomes).toEqual(Array(8).fill('broken'));
    expect(cacheEntries(cacheDir)).toHaveLength(0);
    expect(await metric('eris_compressions_running')).toBe(0);
  });

  it('more distinct compressed NARs than the cap: never more xz than compression_max, the rest wait or get 503 + Retry-After; plain NARs are not held up', async () => {
    await startOrigin(`compression = "xz"\ncompression_level = 6\ncompression_max = 2\ncompression_queue = 2\n`);
    const names = Array.from({ length: 6 }, (_, i) => `distinct-${i}`);
    const urls = await Promise.all(names.map((n) => narUrl(paths[n]!)));
    const plainUrl = (await narUrl(paths.shared!)).replace(/\.xz$/, '');
    const s = sampler(origin!);
    const t0 = performance.now();
    let plainDone = 0;
    const [answers] = await Promise.all([
      Promise.all(urls.map(async (u, i) => {
        const res = await get(u);
        const body = Buffer.from(await res.arrayBuffer());
        return { i, status: res.status, retryAfter: res.headers.get('retry-after'), body, done: performance.now() - t0 };
      })),
      (async () => {
        await new Promise((r) => setTimeout(r, 100)); // while the compressions run and wait
        const res = await get(plainUrl);
        expect(Buffer.from(await res.arrayBuffer()).equals(narDump(paths.shared!, root))).toBe(true);
        plainDone = performance.now() - t0;
      })(),
    ]);
    s.stop();
    expect(s.peak.xz).toBeGreaterThan(0);
    expect(s.peak.xz).toBeLessThanOrEqual(2);
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status !== 200);
    for (const a of ok) expect(xzDecompress(a.body).equals(narDump(paths[names[a.i]!]!, root))).toBe(true);
    for (const a of refused) expect({ status: a.status, retryAfter: a.retryAfter }).toEqual({ status: 503, retryAfter: '2' });
    expect(ok.length).toBeGreaterThanOrEqual(4); // two running, two queued
    expect(refused.length).toBeGreaterThanOrEqual(1); // six arrive at once, while the first compressions still run
    const text = await (await get('/metrics')).text();
    expect(text).toContain(`eris_refused_total{reason="compression_queue"} ${refused.length}`);
    // The plain NAR streamed at disk speed while the compressed ones ran or waited.
    expect(plainDone).toBeLessThan(Math.max(...ok.map((a) => a.done)));
  });

  it('a real nix copy of a 41-path closure with xz and compression_max = 1 completes and verifies', async () => {
    await startOrigin(`compression = "xz"\ncompression_max = 1\n`);
    // Stands in for the edge: adds the edge secret, forwards everything else unchanged.
    const target = new URL(origin!.url);
    const proxy: Server = createServer((req, res) => {
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, 'x-eris-edge-secret': SECRET } }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
        r.on('error', () => res.destroy());
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const to = join(dir, 'copy-many');
      const result = await runNix(['copy', '--from', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, '--to', to, closureTop,
        '--option', 'trusted-public-keys', publicKey, '--option', 'substituters', ''], { timeoutMs: 180_000 });
      expect(result.stderr).not.toMatch(/error/i);
      expect(result.code).toBe(0);
      const copied = execFileSync('nix-store', ['--store', to, '-qR', closureTop], { env: nixEnv(), encoding: 'utf8' }).trim().split('\n');
      expect(copied.sort()).toEqual([...closure].sort());
      expect(closure.length).toBe(41);
      expect(await metric('eris_compressions_started_total')).toBe(41);
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  }, 200_000);

  it('24 clients fetching the same and different xz NARs: at most compression_max xz, origin RSS under 200 MiB', async () => {
    await startOrigin(`compression = "xz"\ncompression_max = 2\n`);
    const sharedUrl = await narUrl(paths.shared!);
    const distinct = await Promise.all(Array.from({ length: 12 }, (_, i) => narUrl(paths[`distinct-${i}`]!)));
    const s = sampler(origin!);
    const t0 = performance.now();
    const urls = [...Array(12).fill(sharedUrl), ...distinct];
    const sizes = await Promise.all(urls.map(async (u) => {
      const res = await get(u);
      expect(res.status).toBe(200);
      return (await res.arrayBuffer()).byteLength;
    }));
    const seconds = (performance.now() - t0) / 1000;
    s.stop();
    const total = sizes.reduce((a, b) => a + b, 0);
    console.log(`24 clients (12 same, 12 different xz NARs): ${(total / MiB).toFixed(1)} MiB in ${seconds.toFixed(1)} s (${(total / MiB / seconds).toFixed(2)} MiB/s), ` +
      `at most ${s.peak.xz} xz, peak origin RSS ${(s.peak.originRss / MiB).toFixed(0)} MiB, with xz ${(s.peak.totalRss / MiB).toFixed(0)} MiB`);
    expect(s.peak.xz).toBeLessThanOrEqual(2);
    expect(await metric('eris_compressions_started_total')).toBe(13);
    expect(s.peak.originRss).toBeLessThan(200 * MiB);
  }, 200_000);
});
