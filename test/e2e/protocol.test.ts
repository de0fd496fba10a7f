/**
 * Protocol features with a real Nix client through the Worker (wrangler dev):
 * byte ranges, `.ls` listings (`nix store ls`), build logs (`nix log`), and
 * zstd/xz compression with the on-disk cache of compressed NARs.
 */
import { describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNarInfo } from '../../shared/narinfo.ts';
import { encodeNix32 } from '../../shared/nix32.ts';
import { hashOf, narDump, nixEnv, NIX_FLAGS, runNix } from '../helpers/nix.ts';
import { nixCopyFrom, useStack } from '../helpers/stack.ts';

const fixture = inject('fixture');

describe.skipIf(!fixture)('protocol features through the Worker', () => {
  let root: string;
  const top = fixture?.top ?? '';
  const s = useStack(() => ({
    root(dir) {
      root = join(dir, 'root');
      execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--from', fixture!.root, '--to', root, top], { env: nixEnv(), stdio: 'pipe' });
      return root;
    },
  }));

  /** Restarts the origin on the same port with a config file. */
  async function useOrigin(config: string) {
    const file = join(s.dir, `origin-${Date.now()}.toml`);
    writeFileSync(file, config);
    await s.restartOrigin({ originArgs: ['--config', file] });
  }

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(s.edge.url + path, { headers: { Authorization: `Bearer ${s.token}`, ...headers }, signal: AbortSignal.timeout(30_000) });

  it('serves byte ranges of a NAR through the edge (206, Content-Range), as Nix uses to resume', async () => {
    const dep = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
    const whole = narDump(dep, root);
    const info = parseNarInfo(await (await get(`/${hashOf(dep)}.narinfo`)).text());
    const full = await get('/' + info.url);
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await full.arrayBuffer()).equals(whole)).toBe(true);
    const res = await get('/' + info.url, { Range: 'bytes=100-1099' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 100-1099/${whole.length}`);
    expect(res.headers.get('content-length')).toBe('1000');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(Buffer.from(await res.arrayBuffer()).equals(whole.subarray(100, 1100))).toBe(true);
    const tail = await get('/' + info.url, { Range: `bytes=${whole.length - 10}-` });
    expect(Buffer.from(await tail.arrayBuffer()).equals(whole.subarray(whole.length - 10))).toBe(true);
    const bad = await get('/' + info.url, { Range: `bytes=${whole.length}-` });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe(`bytes */${whole.length}`);
  });

  it('answers nix store ls from the .ls listing', async () => {
    const dep = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
    const r = await runNix(['store', 'ls', '--store', s.edge.url, '-R', dep, '--option', 'netrc-file', s.netrc]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const local = execFileSync('nix', [...NIX_FLAGS, 'store', 'ls', '--store', root, '-R', dep], { env: nixEnv(), encoding: 'utf8' });
    expect(r.stdout).toBe(local);
    expect(r.stdout).toContain('./bin/tool');
  });

  it('serves build logs that nix log reads, bzip2 or plain', async () => {
    const info = parseNarInfo(await (await get(`/${hashOf(top)}.narinfo`)).text());
    const drv = info.deriver!;
    const logDir = join(root, 'nix/var/log/nix/drvs', drv.slice(0, 2));
    mkdirSync(logDir, { recursive: true });
    const text = 'building eris-top\nhello from the build log\n';
    writeFileSync(join(logDir, drv.slice(2)), text);
    execFileSync('bzip2', [join(logDir, drv.slice(2))]); // leaves only <name>.bz2, as Nix does
    const res = await get(`/log/${drv}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(text);
    const r = await runNix(['log', '--store', s.edge.url, top, '--option', 'netrc-file', s.netrc]);
    expect(r.stdout).toBe(text);
    expect((await get('/log/00000000000000000000000000000000-none.drv')).status).toBe(404);
    expect((await get('/log/..%2F..%2Fetc%2Fpasswd')).status).toBe(400);
  });

  for (const method of ['zstd', 'xz'] as const) {
    it(`copies a closure served ${method}-compressed, and advertises FileHash/FileSize once the file is cached`, async () => {
      const cacheDir = join(s.dir, `cache-${method}`);
      await useOrigin(`compression = "${method}"\nnar_cache_dir = "${cacheDir}"\n`);
      const first = parseNarInfo(await (await get(`/${hashOf(top)}.narinfo`)).text());
      expect(first.compression).toBe(method);
      expect(first.url).toMatch(method === 'zstd' ? /\.nar\.zstd$/ : /\.nar\.xz$/);
      expect(first.fileHash).toBeUndefined();

      const to = join(s.dir, `client-${method}`);
      const r = await nixCopyFrom(s, { to, paths: [top] });
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      for (const p of fixture!.closure) expect(existsSync(join(to, p))).toBe(true);

      // The compressed file is now cached: narinfo names its exact hash and size, and the file matches them.
      const second = parseNarInfo(await (await get(`/${hashOf(top)}.narinfo`)).text());
      expect(second.fileSize).toBeGreaterThan(0);
      const body = Buffer.from(await (await get('/' + second.url)).arrayBuffer());
      expect(body.length).toBe(second.fileSize);
      expect(`sha256:${encodeNix32(createHash('sha256').update(body).digest())}`).toBe(second.fileHash);
      const ranged = await get('/' + second.url, { Range: 'bytes=0-3' });
      expect(ranged.status).toBe(206);
      expect(ranged.headers.get('content-encoding')).toBeNull();

      // A crash leaves a partial temp file: it is removed at start and never served.
      mkdirSync(join(cacheDir, 'tmp', '999999999'), { recursive: true });
      writeFileSync(join(cacheDir, 'tmp', '999999999', `${second.fileHash!.slice(7)}.nar.${method}`), 'half a file');
      writeFileSync(join(cacheDir, 'tmp', 'partial'), 'half a file');
      await useOrigin(`compression = "${method}"\nnar_cache_dir = "${cacheDir}"\n`);
      expect(readdirSync(join(cacheDir, 'tmp'))).toEqual([String(s.origin.child.pid)]);
      const third = parseNarInfo(await (await get(`/${hashOf(top)}.narinfo`)).text());
      expect([third.fileHash, third.fileSize]).toEqual([second.fileHash, second.fileSize]);
    });
  }

  it('counts requests and bytes in /metrics on the origin, which the edge does not forward', async () => {
    const m = await s.direct('/metrics');
    const text = await m.text();
    expect(text).toMatch(/^eris_requests_total\{route="narinfo",status="200"\} \d+$/m);
    expect(text).toMatch(/^eris_signature_cache_hits_total \d+$/m);
    expect((await get('/metrics')).status).toBe(404);
  });
});
