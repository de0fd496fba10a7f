/**
 * Several caches on one box, as a user runs them: `ERIS_CONFIG=FILE npm start`
 * (origin + `wrangler dev`) on a chroot store built by real Nix, tokens made with
 * `eris token add --cache`, roots added with `eris publish`, and real `nix copy`.
 *
 *   team-a  roots = a profile link (→ fixture's top), its own key, priority 10
 *   team-b  roots only from `eris publish`, its own key, priority 20
 *   public  publish = "all", exclude = ["*-secret*"], the dev stack's key; the default cache
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { formatSha256Nix32, parseSha256 } from '../../shared/hash.ts';
import { parseNarInfo } from '../../shared/narinfo.ts';
import { hashOf, nixCopy, nixEnv, NIX_FLAGS } from '../helpers/nix.ts';
import { ERIS_CLI, eris, freePort, startProcess, waitForOutput, type Proc } from '../helpers/processes.ts';

const fixture = inject('fixture');
const cli = (...args: string[]) => eris(args);
const cachesNix = new URL('../fixtures/caches.nix', import.meta.url).pathname;

async function eventually(what: string, cond: () => Promise<boolean>, ms = 3000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

interface Row { path: string; hash: string; deriver: string | null }

describe.skipIf(!fixture)('several caches on one origin, through wrangler dev, with real Nix', () => {
  let dir: string;
  let root: string;
  let devDir: string;
  let stack: Proc;
  let edge: string;
  let origin: string;
  let edgeSecret: string;
  let configFile: string;
  const keys: Record<string, string> = {};
  const netrc: Record<string, string> = {};
  let built: Record<'lib' | 'secret' | 'app' | 'tool', string>;
  let rows: Row[];
  let out: string;

  const narPath = (r: Row) => `nar/${hashOf(r.path)}-${formatSha256Nix32(parseSha256(r.hash)).slice('sha256:'.length)}.nar`;
  const atOrigin = (path: string) => fetch(origin + path, { headers: { 'x-eris-edge-secret': edgeSecret }, signal: AbortSignal.timeout(10_000) });
  const atEdge = (path: string, who?: string) => {
    const headers: Record<string, string> = {};
    if (who) {
      const [, user, token] = /login (\S+) password (\S+)/.exec(readFileSync(netrc[who]!, 'utf8'))!;
      headers.Authorization = 'Basic ' + Buffer.from(`${user}:${token}`).toString('base64');
    }
    return fetch(edge + path, { headers, signal: AbortSignal.timeout(10_000) });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-caches-'));
    root = join(dir, 'root');
    devDir = join(dir, 'dev');
    const env = nixEnv();
    const out4 = execFileSync('nix-build', [cachesNix, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8' }).trim().split('\n');
    built = {
      app: out4.find((p) => p.endsWith('-eris-app'))!,
      lib: out4.find((p) => p.endsWith('-eris-lib'))!,
      secret: out4.find((p) => p.endsWith('-eris-secret-token'))!,
      tool: out4.find((p) => p.endsWith('-eris-tool'))!,
    };
    execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, fixture!.top, built.app, built.tool], { env, stdio: 'pipe' });
    const db = new DatabaseSync(join(root, 'nix/var/nix/db/db.sqlite'), { readOnly: true });
    rows = db.prepare('SELECT path, hash, deriver FROM ValidPaths ORDER BY path').all() as unknown as Row[];
    db.close();
    // A build log for tool's derivation (logs do not travel with nix copy).
    const drv = rows.find((r) => r.path === built.tool)!.deriver!.slice(11);
    mkdirSync(join(root, 'nix/var/log/nix/drvs', drv.slice(0, 2)), { recursive: true });
    writeFileSync(join(root, 'nix/var/log/nix/drvs', drv.slice(0, 2), drv.slice(2)), 'building tool\n');
    // team-a's root: a profile, as /nix/var/nix/profiles/system is.
    mkdirSync(join(root, 'nix/var/nix/profiles'), { recursive: true });
    symlinkSync(fixture!.top, join(root, 'nix/var/nix/profiles/team-a-1-link'));
    symlinkSync('team-a-1-link', join(root, 'nix/var/nix/profiles/team-a'));

    for (const name of ['a', 'b']) {
      execFileSync('nix-store', ['--generate-binary-cache-key', `cache-${name}-1`, join(dir, `${name}.sec`), join(dir, `${name}.pub`)], { env });
      keys[name] = readFileSync(join(dir, `${name}.pub`), 'utf8').trim();
    }
    configFile = join(dir, 'eris.toml');
    writeFileSync(configFile, [
      `store_root = "${root}"`,
      'default_cache = "public"',
      '[[cache]]', 'name = "team-a"', 'roots = ["/nix/var/nix/profiles/team-a"]', `sign_key_paths = ["${dir}/a.sec"]`, 'priority = 10',
      '[[cache]]', 'name = "team-b"', `sign_key_paths = ["${dir}/b.sec"]`, 'priority = 20',
      '[[cache]]', 'name = "public"', 'publish = "all"', 'exclude = ["*-secret*"]',
      '',
    ].join('\n'));

    const edgePort = await freePort();
    const originPort = await freePort();
    edge = `http://127.0.0.1:${edgePort}`;
    origin = `http://127.0.0.1:${originPort}`;
    stack = startProcess(process.execPath, [...ERIS_CLI, 'dev'], {
      env: { ...process.env, ERIS_CONFIG: configFile, ERIS_EDGE_PORT: String(edgePort), ERIS_ORIGIN_PORT: String(originPort), ERIS_DEV_DIR: devDir },
      cwd: dir,
    });
    out = await waitForOutput(stack, /Ctrl-C stops both/, 150_000);
    edgeSecret = readFileSync(join(devDir, 'edge-secret'), 'utf8').trim();
    keys.public = readFileSync(join(devDir, 'signing-key.pub'), 'utf8').trim();
    netrc.dev = join(devDir, 'netrc');
    const state = join(devDir, 'wrangler-state');
    for (const [who, caches] of [['alice', ['team-a']], ['bob', ['team-a', 'team-b']], ['carol', []]] as const) {
      const r = cli('token', 'add', who, ...caches.flatMap((c) => ['--cache', c]), '--persist-to', state);
      expect(r.status, r.stderr).toBe(0);
      netrc[who] = join(dir, `netrc-${who}`);
      writeFileSync(netrc[who]!, `machine 127.0.0.1 login ${who} password ${r.stdout.trim()}\n`);
    }
  });

  afterAll(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('npm start with ERIS_CONFIG lists each cache with its URL, key and priority', () => {
    expect(out).toContain(`  team-a: ${edge}/team-a  publish = roots, priority 10, key ${keys.a}\n`);
    expect(out).toContain(`  team-b: ${edge}/team-b  publish = roots, priority 20, key ${keys.b}\n`);
    expect(out).toContain(`  public (default, also at the bare root): ${edge}/public  publish = all, priority 30, key ${keys.public}\n`);
  });

  it('copies a closure from its cache with nix copy, trusting only that cache\'s key', async () => {
    const to = join(dir, 'client-a');
    const r = await nixCopy({ from: `${edge}/team-a`, to, paths: [fixture!.top], trustedKeys: keys.a!, netrc: netrc.alice });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    for (const p of fixture!.closure) expect(existsSync(join(to, p))).toBe(true);
  });

  it('answers 404 outside a cache\'s set (narinfo, NAR, .ls, log) and never signs it with the cache\'s key, for every path of the store', async () => {
    const inA = new Set(fixture!.closure);
    const notPublic = new Set([built.secret, built.app]);
    for (const r of rows) {
      for (const [cache, keyName, published] of [
        ['team-a', 'cache-a-1', inA.has(r.path)],
        ['team-b', 'cache-b-1', false],
        ['public', keys.public!.split(':')[0]!, !notPublic.has(r.path)],
      ] as const) {
        const res = await atOrigin(`/${cache}/${hashOf(r.path)}.narinfo`);
        const body = await res.text();
        expect({ cache, path: r.path, status: res.status }).toEqual({ cache, path: r.path, status: published ? 200 : 404 });
        for (const other of ['cache-a-1', 'cache-b-1', keys.public!.split(':')[0]!]) {
          if (other !== keyName || !published) expect(body).not.toContain(`${other}:`);
        }
        if (published) expect(parseNarInfo(body).sigs.map((s) => s.split(':')[0])).toEqual([keyName]);
        const nar = await atOrigin(`/${cache}/${narPath(r)}`);
        await nar.body?.cancel();
        const ls = await atOrigin(`/${cache}/${hashOf(r.path)}.ls`);
        await ls.body?.cancel();
        expect({ cache, path: r.path, nar: nar.status, ls: ls.status }).toEqual({ cache, path: r.path, nar: published ? 200 : 404, ls: published ? 200 : 404 });
      }
    }
    const drv = rows.find((r) => r.path === built.tool)!.deriver!.slice(11);
    expect((await atOrigin(`/team-a/log/${drv}`)).status).toBe(404);
    expect((await atOrigin(`/public/log/${drv}`)).status).toBe(200);
    // The same answer as for a path that does not exist.
    const absent = await atOrigin(`/team-a/${'0'.repeat(32)}.narinfo`);
    const outside = await atOrigin(`/team-a/${hashOf(built.tool)}.narinfo`);
    expect([outside.status, await outside.text()]).toEqual([absent.status, await absent.text()]);
  });

  it('keeps caches apart: A\'s key fails on /team-b with a signature error; A\'s token gets 401 on every URL of /team-b', async () => {
    expect(cli('publish', built.tool, '--cache', 'team-b', '--config', configFile).status).toBe(0);
    await eventually('tool in team-b', async () => (await atOrigin(`/team-b/${hashOf(built.tool)}.narinfo`)).status === 200);
    const wrongKey = await nixCopy({ from: `${edge}/team-b`, to: join(dir, 'client-b-wrong'), paths: [built.tool], trustedKeys: keys.a!, netrc: netrc.bob });
    expect(wrongKey.code).not.toBe(0);
    expect(wrongKey.stderr).toMatch(/signature/i);
    const rightKey = await nixCopy({ from: `${edge}/team-b`, to: join(dir, 'client-b'), paths: [built.tool], trustedKeys: keys.b!, netrc: netrc.bob });
    expect(rightKey.code, rightKey.stderr).toBe(0);

    const tool = rows.find((r) => r.path === built.tool)!;
    const drv = tool.deriver!.slice(11);
    const urls = ['/team-b/nix-cache-info', `/team-b/${hashOf(built.tool)}.narinfo`, `/team-b/${narPath(tool)}`, `/team-b/${hashOf(built.tool)}.ls`,
      `/team-b/log/${drv}`, `/team-b/${'0'.repeat(32)}.narinfo`, '/team-b/', '/team-b', `/team-b/realisations/sha256:${'ab'.repeat(32)}!out.doi`];
    const bad = await atEdge('/team-b/nix-cache-info', undefined);
    const badBody = await bad.text();
    for (const url of urls) {
      expect((await atEdge(url, 'bob')).status).not.toBe(401);
      const res = await atEdge(url, 'alice');
      expect({ url, status: res.status, body: await res.text() }).toEqual({ url, status: 401, body: badBody });
    }
    // Bob may read team-b, but not the default cache (his token lists caches without it).
    expect((await atEdge('/nix-cache-info', 'bob')).status).toBe(401);
    expect(await (await atEdge('/team-b/nix-cache-info', 'bob')).text()).toMatch(/Priority: 20\n/);
  });

  it('leaves out an excluded name and whatever depends on it, and says so', async () => {
    const r = cli('published', '--cache', 'public', '--config', configFile);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`cache public: publishes every valid path except 2 excluded (publish = "all")\n`);
    expect(r.stdout).toContain(`  ${built.secret}: matches "*-secret*"\n`);
    expect(r.stdout).toContain(`  ${built.app}: depends on ${built.secret}\n`);
    expect((await atEdge(`/${hashOf(built.secret)}.narinfo`, 'carol')).status).toBe(404);
    const copy = await nixCopy({ from: edge, to: join(dir, 'client-secret'), paths: [built.secret], trustedKeys: keys.public!, netrc: netrc.carol });
    expect(copy.code).not.toBe(0);
    const lib = await nixCopy({ from: edge, to: join(dir, 'client-lib'), paths: [built.lib], trustedKeys: keys.public!, netrc: netrc.carol });
    expect(lib.code, lib.stderr).toBe(0);
  });

  it('follows eris publish / unpublish without a restart, and nix-collect-garbage keeps what is published', async () => {
    const at = (h: string) => atEdge(`/team-b/${hashOf(h)}.narinfo`, 'bob').then((r) => r.status);
    expect(cli('publish', built.app, '--cache', 'team-b', '--config', configFile).status).toBe(0);
    const shownMs = await eventually('app and its closure in team-b', async () => (await at(built.app)) === 200 && (await at(built.secret)) === 200);
    expect(cli('unpublish', built.app, '--cache', 'team-b', '--config', configFile).status).toBe(0);
    await eventually('app gone from team-b', async () => (await at(built.app)) === 404 && (await at(built.secret)) === 404);
    expect(await at(built.lib)).toBe(200); // still in tool's closure
    expect(shownMs).toBeLessThan(2000);

    execFileSync('nix-collect-garbage', ['--store', root], { env: nixEnv(), stdio: 'pipe' });
    // Published (tool via gcroots/eris/team-b, top via the profile) survives; app (published nowhere, only in "all") is gone.
    for (const p of [built.tool, built.lib, ...fixture!.closure]) expect(existsSync(join(root, p))).toBe(true);
    expect(existsSync(join(root, built.app))).toBe(false);
    await eventually('collected app gone from public', async () => (await atEdge(`/${hashOf(built.app)}.narinfo`, 'carol')).status === 404);
    expect(await at(built.tool)).toBe(200);
  });

  it('serves the bare root as the default cache and lists, per token, the caches it may use', async () => {
    expect(await (await atEdge('/nix-cache-info', 'carol')).text()).toMatch(/Priority: 30\n/);
    expect((await atEdge('/team-a/nix-cache-info', 'carol')).status).toBe(401);
    expect(await (await atEdge('/v1/caches', 'alice')).json()).toEqual({
      caches: [{ name: 'team-a', priority: 10, publicKeys: [keys.a], default: false, url: `${edge}/team-a` }],
    });
    expect(((await (await atEdge('/v1/caches', 'dev')).json()) as { caches: { name: string }[] }).caches.map((c) => c.name)).toEqual(['team-a', 'team-b', 'public']);
    const landing = await atEdge('/team-a/', 'alice');
    expect(landing.status).toBe(200);
    expect(await landing.text()).toContain(`substituters = ${edge}/team-a`);
  });
});
