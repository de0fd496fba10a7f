/**
 * The `npm start` contract: ERIS_STORE_ROOT / ERIS_EDGE_PORT / ERIS_ORIGIN_PORT /
 * ERIS_DEV_DIR, the files it writes, the command it prints (which must work),
 * a clear failure without a store, and SIGTERM stopping both processes.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixEnv, runNix } from '../helpers/nix.ts';
import { eris, ERIS_CLI, freePort, startProcess, waitForOutput } from '../helpers/processes.ts';

const fixture = inject('fixture');
const NPM_START = [process.execPath, [...ERIS_CLI, 'dev']] as const;

describe('npm start', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'eris-dev-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it.skipIf(!fixture)('serves the store with a Nix-made key, prints a nix copy command that works, and stops on SIGTERM', async () => {
    const devDir = join(tmp(), 'dev');
    execFileSync('mkdir', ['-p', devDir]);
    // A key made by Nix itself, with no .pub beside it: used as is.
    execFileSync('nix-store', ['--generate-binary-cache-key', 'my-cache-1', join(devDir, 'signing-key.sec'), join(tmp(), 'elsewhere.pub')], { env: nixEnv() });
    const edgePort = await freePort();
    const originPort = await freePort();
    const proc = startProcess(NPM_START[0], [...NPM_START[1]], {
      env: { ...process.env, ERIS_STORE_ROOT: fixture!.root, ERIS_EDGE_PORT: String(edgePort), ERIS_ORIGIN_PORT: String(originPort), ERIS_DEV_DIR: devDir },
      cwd: tmp(),
    });
    try {
      const out = await waitForOutput(proc, /Ctrl-C stops both/, 120_000);
      const publicKey = readFileSync(join(devDir, 'signing-key.pub'), 'utf8').trim();
      expect(publicKey).toMatch(/^my-cache-1:/);
      expect(out).toContain(`public key: ${publicKey}`);
      expect(readFileSync(join(devDir, 'netrc'), 'utf8')).toMatch(/^machine 127\.0\.0\.1 login dev password eris_\S+\n$/);
      expect((await fetch(`http://127.0.0.1:${edgePort}/v1/public-key`)).status).toBe(200);
      // Without ERIS_CONFIG: one cache, `default`, publishing the whole store, at the bare root.
      const devToken = /password (\S+)/.exec(readFileSync(join(devDir, 'netrc'), 'utf8'))![1]!;
      const list = await (await fetch(`http://127.0.0.1:${edgePort}/v1/caches`, { headers: { Authorization: `Bearer ${devToken}` } })).json();
      expect(list).toEqual({ caches: [{ name: 'default', priority: 30, publicKeys: [publicKey], default: true, url: `http://127.0.0.1:${edgePort}/default` }] });
      expect((await fetch(`http://127.0.0.1:${originPort}/v1/public-key`)).status).toBe(403);

      // Run the printed command, with the destination and the path swapped for a fresh store and our closure.
      const printed = out.slice(out.indexOf('nix copy')).split('\n\n')[0]!.replace(/\\\n\s*/g, '');
      const args = printed.match(/'[^']*'|\S+/g)!.map((a) => a.replace(/^'(.*)'$/, '$1')).slice(1);
      const to = join(tmp(), 'client');
      args[args.indexOf('--to') + 1] = to;
      const pathIndex = args.findIndex((a) => a.startsWith('/nix/store/'));
      args[pathIndex] = fixture!.top;
      expect(args).toContain(`http://127.0.0.1:${edgePort}`);
      const r = await runNix(args.filter((a, i) => !(a === '--extra-experimental-features' || args[i - 1] === '--extra-experimental-features')));
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      for (const p of fixture!.closure) expect(existsSync(join(to, p))).toBe(true);
    } finally {
      proc.child.kill('SIGTERM');
      await new Promise((r) => (proc.child.exitCode !== null ? r(null) : proc.child.once('exit', r)));
    }
    // Both children are gone: nothing answers on either port.
    await new Promise((r) => setTimeout(r, 500));
    await expect(fetch(`http://127.0.0.1:${edgePort}/v1/public-key`, { signal: AbortSignal.timeout(3000) })).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    await expect(fetch(`http://127.0.0.1:${originPort}/v1/public-key`, { signal: AbortSignal.timeout(3000) })).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
  });

  it('fails with one clear line when there is no Nix store at ERIS_STORE_ROOT', async () => {
    const empty = tmp();
    const child = spawn(NPM_START[0], [...NPM_START[1]], { env: { ...process.env, ERIS_STORE_ROOT: empty, ERIS_DEV_DIR: join(empty, 'd') } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).not.toBe(0);
    expect(stderr.trim().split('\n')).toEqual([`eris: no Nix store at ${empty}/nix/store (set ERIS_STORE_ROOT to a directory holding nix/store and nix/var/nix/db)`]);
  });

  it('fails with one clear line when ERIS_CONFIG names no readable file', () => {
    const missing = join(tmp(), 'missing.toml');
    const r = eris(['dev'], { env: { ...process.env, ERIS_CONFIG: missing, ERIS_DEV_DIR: join(tmp(), 'd') } });
    expect(r.stderr.trim().split('\n')).toEqual([`eris: ERIS_CONFIG: cannot read ${missing}: ENOENT`]);
    expect(r.status).toBe(2);
  });
});
