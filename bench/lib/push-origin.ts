/**
 * What the push benches share. Where every push bench starts (push.ts, push-probe.ts, push-trace.ts): a signing key in Nix's own format
 * and a chroot store under `dir` with a DB and one tiny path, for `eris serve --push-dir` to import into.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { NIX_FLAGS, nixEnv } from '../../test/helpers/nix.ts';

export function pushOriginStore(dir: string, keyName: string): { sec: string; root: string } {
  const env = nixEnv();
  const sec = join(dir, 'cache.sec');
  execFileSync('nix-store', ['--generate-binary-cache-key', keyName, sec, join(dir, 'cache.pub')], { env });
  const root = join(dir, 'root');
  const seedFile = join(dir, 'seed');
  writeFileSync(seedFile, 'seed\n');
  const seed = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', seedFile], { env, encoding: 'utf8' }).trim();
  execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, seed], { env });
  return { sec, root };
}

/** Adds one path of `mib` MiB of random bytes (`nix store add-file`, a file under `dir` removed after) to this machine's store. */
export function addRandomPath(dir: string, name: string, mib: number): string {
  const env = nixEnv();
  const file = join(dir, name);
  const fd = openSync(file, 'w');
  for (let left = mib * 2 ** 20; left > 0; left -= 1 << 20) writeSync(fd, randomBytes(Math.min(left, 1 << 20)));
  closeSync(fd);
  const path = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', file], { env, encoding: 'utf8' }).trim();
  rmSync(file);
  return path;
}

/** One request through the timing proxy: ms since `t0` when it arrived, its body ended, the answer's head came and ended. */
export interface Timed { method: string; url: string; arrived: number; bodyEnd?: number; head?: number; end?: number; status?: number }

/**
 * A loopback proxy before the origin that adds the edge secret (cloudflared's place) and times each request;
 * `rename` shortens its URL for printing. `t0` (performance.now()) can be reset.
 */
export async function startTimingProxy(originUrl: string, secret: string, rename: (url: string) => string) {
  const t = new URL(originUrl);
  const seen: Timed[] = [];
  const state = { t0: performance.now() };
  const at = () => performance.now() - state.t0;
  const server = createServer((req, res) => {
    const s: Timed = { method: req.method!, url: rename(req.url!), arrived: at() };
    seen.push(s);
    req.on('end', () => (s.bodyEnd = at()));
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, 'x-eris-edge-secret': secret } }, (r) => {
      s.head = at();
      s.status = r.statusCode;
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
      r.on('end', () => (s.end = at()));
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, state, close: () => server.close() };
}

/** Samples a process's VmRSS every `ms` until stopped; `stop()` gives the peak in MiB. */
export function rssSampler(pid: () => number | undefined, ms = 20) {
  let max = 0;
  const timer = setInterval(() => {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid()}/status`, 'utf8'));
      if (m) max = Math.max(max, Number(m[1]) / 1024);
    } catch {}
  }, ms);
  return { stop: () => (clearInterval(timer), max) };
}
