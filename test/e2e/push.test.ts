/**
 * Push over HTTP, as a user does it: a client builds a closure in its own
 * store and runs `nix copy --to http://<edge>` with a write token; `eris
 * serve` (push_dir set, a chroot store of its own) verifies and imports
 * through Nix; fresh clients copy the paths back through `wrangler dev`
 * trusting only the cache's key. One stack for every case here.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { encodeNix32 } from '../../shared/nix32.ts';
import { hashOf, NIX_FLAGS, narDump, nixCopy, nixEnv, runNix } from '../helpers/nix.ts';
import { eris } from '../helpers/processes.ts';
import { useStack } from '../helpers/stack.ts';
import { DatabaseSync } from 'node:sqlite';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';

const fixture = inject('fixture');
const MAX_UPLOAD = 2_000_000;
const PUSH_NIX = new URL('../fixtures/push.nix', import.meta.url).pathname;

const nix32 = (b: Buffer) => encodeNix32(b);
const sha = (b: Buffer) => createHash('sha256').update(b).digest();

/** Builds attribute `attr` of push.nix in the client's (this machine's) store. */
function build(attr: string, salt: string, extra: string[] = []): string {
  return execFileSync('nix-build', [PUSH_NIX, '-A', attr, '--argstr', 'salt', salt, ...extra, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''],
    { env: nixEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function closureOf(path: string): string[] {
  return execFileSync('nix-store', ['-qR', path], { env: nixEnv(), encoding: 'utf8' }).trim().split('\n');
}

describe.skipIf(!fixture)('push: nix copy --to the edge with a write token', () => {
  let root: string;
  let pushDir: string;
  let proxy: RecordingProxy;
  let teamKey: string;
  let readNetrc: string;
  const salt = randomBytes(6).toString('hex');
  const s = useStack(() => ({
    keyBy: 'nix',
    keyName: 'push-cache-1',
    root(dir) {
      // The origin's store: its own chroot store, holding the fixture's dep -> leaf to start with.
      root = join(dir, 'root');
      const dep = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
      execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, dep], { env: nixEnv() });
      symlinkSync(dep, join(root, 'nix/var/nix/gcroots/fixture-dep')); // kept by the GC below, like any profile
      pushDir = join(dir, 'push');
      // Two caches: the default one publishing the whole store, and "team" publishing its roots, with a key of its own.
      execFileSync('nix-store', ['--generate-binary-cache-key', 'push-team-1', join(dir, 'team.sec'), join(dir, 'team.pub')], { env: nixEnv() });
      teamKey = readFileSync(join(dir, 'team.pub'), 'utf8').trim();
      writeFileSync(join(dir, 'eris.toml'), `[[cache]]\nname = "default"\npublish = "all"\n\n[[cache]]\nname = "team"\npublish = "roots"\nsign_key_paths = ["${join(dir, 'team.sec')}"]\n`);
      return root;
    },
    originArgs: (dir) => ['--config', join(dir, 'eris.toml'), '--push-dir', join(dir, 'push'), '--state-dir', join(dir, 'state')],
    vars: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD) },
    user: 'pusher',
    scopes: ['read', 'write'],
    caches: ['default', 'team'],
    tokens: {
      reader: { user: 'reader', scopes: ['read'] },
      teamWriter: { user: 'team-writer', scopes: ['read', 'write'], caches: ['team'] },
      expiredWriter: { user: 'expired-writer', scopes: ['read', 'write'], expires: '2000-01-01T00:00:00Z' },
    },
  }));
  const writeAuth = () => s.auth.Authorization!;

  /** Valid paths of the origin's store. */
  const validInOrigin = (p: string) => runNix(['path-info', '--store', root, p]).then((r) => r.code === 0);
  const stagedFiles = () => {
    const st = join(pushDir, 'staging');
    return existsSync(st) ? readdirSync(st).flatMap((c) => readdirSync(join(st, c)).map((f) => `${c}/${f}`)) : [];
  };
  const storeRows = () => readdirSync(join(root, 'nix/store')).sort();
  const push = (paths: string[], netrc?: string, env: Record<string, string> = {}, cache = '') =>
    runNix(['copy', '--to', proxy.url + cache, ...paths, '--option', 'connect-timeout', '5', '--option', 'download-attempts', '1',
      ...(netrc ? ['--option', 'netrc-file', netrc] : [])], { env, timeoutMs: 120_000 });
  const put = (path: string, body: Buffer | string, auth = writeAuth()) =>
    fetch(s.edge.url + path, { method: 'PUT', body, headers: { Authorization: auth }, signal: AbortSignal.timeout(30_000) });

  beforeAll(async () => {
    const reader = s.tokens.reader!;
    proxy = await startRecordingProxy(s.edge.url);
    readNetrc = join(s.dir, 'read-netrc');
    writeFileSync(readNetrc, `machine 127.0.0.1 login reader password ${reader}\n`);
  });
  afterAll(() => proxy?.close());

  it('pushes a client-built closure; a fresh client copies it trusting only the cache key; it survives GC; the pusher reads it back', async () => {
    const a = build('a', salt);
    const closure = closureOf(a);
    expect(closure.length).toBe(2);
    // The pusher signs what it pushes with its own key (secret-key-files on a CI runner): its narinfo cache keeps
    // the narinfo it uploaded, and only its own signature is on that.
    const clientKey = join(s.dir, 'client.sec');
    execFileSync('nix-store', ['--generate-binary-cache-key', 'push-client-1', clientKey, join(s.dir, 'client.pub')], { env: nixEnv() });
    execFileSync('nix', [...NIX_FLAGS, 'store', 'sign', '-k', clientKey, '-r', a], { env: nixEnv() });
    const narinfoCache = mkdtempSync(join(s.dir, 'pusher-cache-'));
    const r = await push([a], s.netrc, { XDG_CACHE_HOME: narinfoCache });
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    for (const p of closure) expect(await validInOrigin(p)).toBe(true);
    expect(stagedFiles()).toEqual([]); // moved on after the import

    // Usage: the pusher's pushes and bytes received are what Nix says it uploaded (its narinfo cache's FileSize).
    const nixDb = new DatabaseSync(join(narinfoCache, 'nix/binary-cache-v6.sqlite'), { readOnly: true });
    const uploaded = nixDb.prepare('SELECT SUM(fileSize) AS bytes, COUNT(*) AS n FROM NARs WHERE present = 1').get() as { bytes: number; n: number };
    nixDb.close();
    expect(uploaded.n).toBe(closure.length);
    let pusher: Record<string, unknown> | undefined;
    for (let i = 0; i < 30 && pusher?.pushes !== closure.length; i++) {
      await new Promise((res) => setTimeout(res, 200));
      pusher = (JSON.parse(eris(['usage', '--json', '--state-dir', join(s.dir, 'state'), '--user', 'pusher']).stdout || '{}').users ?? [])[0];
    }
    expect(pusher).toMatchObject({ user: 'pusher', pushes: closure.length, bytesReceived: uploaded.bytes });

    const fresh = join(s.dir, 'fresh-client');
    const c = await nixCopy({ from: proxy.url, to: fresh, paths: [a], trustedKeys: s.publicKey, netrc: readNetrc });
    expect(c.stderr).not.toMatch(/error/);
    expect(c.code).toBe(0);
    const v = await runNix(['store', 'verify', '--store', fresh, '-r', a, '--option', 'trusted-public-keys', s.publicKey]);
    expect(v.stderr).not.toMatch(/untrusted|corrupt|error/);
    expect(v.code).toBe(0);

    const gc = await runNix(['store', 'gc', '--store', root]);
    expect(gc.code).toBe(0);
    for (const p of closure) expect(await validInOrigin(p)).toBe(true);
    expect(existsSync(join(root, 'nix/var/nix/gcroots/eris/default', a.slice('/nix/store/'.length)))).toBe(true);

    // The same pusher, its narinfo cache kept: it asks for the nar/<filehash>.nar.xz it uploaded.
    const before = proxy.seen.length;
    const back = await runNix(['copy', '--from', proxy.url, '--to', join(s.dir, 'pusher-again'), a,
      '--option', 'trusted-public-keys', readFileSync(join(s.dir, 'client.pub'), 'utf8').trim(),
      '--option', 'netrc-file', s.netrc], { env: { XDG_CACHE_HOME: narinfoCache } });
    expect(back.stderr).not.toMatch(/error/);
    expect(back.code).toBe(0);
    const nars = proxy.seen.slice(before).filter((x) => x.url.startsWith('/nar/'));
    expect(nars.length).toBe(closure.length);
    for (const n of nars) expect({ url: n.url, status: n.status }).toEqual({ url: expect.stringMatching(/^\/nar\/[0-9a-z]{52}\.nar\.xz$/), status: 200 });
  });

  it('pushes to a named cache: served under /team with its key only, rooted there; a path the store has is published without re-import', async () => {
    const b = build('b', salt + '-team');
    const a = fixture!.closure.find((p) => p.endsWith('-eris-leaf'))!; // in the origin's store from the start, not in team
    const r = await push([b, a], s.netrc, {}, '/team');
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const answers = proxy.seen.filter((x) => x.method === 'PUT' && x.url.startsWith('/team/') && x.url.endsWith('.narinfo'));
    expect(answers.map((x) => x.status)).toEqual(answers.map(() => 200));
    for (const p of [b, a]) expect(existsSync(join(root, 'nix/var/nix/gcroots/eris/team', p.slice('/nix/store/'.length)))).toBe(true);
    const said = (what: string, p: string) => s.origin.output().split('\n').some((l) => l.includes(`"msg":"push: ${what}","cache":"team","path":"${p}"`));
    expect(said('imported', b)).toBe(true);
    expect(said('published (already in the store)', a)).toBe(true);

    const fresh = join(s.dir, 'team-client');
    const c = await nixCopy({ from: `${proxy.url}/team`, to: fresh, paths: [b, a], trustedKeys: teamKey, netrc: s.netrc });
    expect(c.stderr).not.toMatch(/error/);
    expect(c.code).toBe(0);
    // A path the store has but nobody pushed to team is not there (the default cache serves it).
    const dep = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
    const narinfo = (prefix: string) => fetch(`${proxy.url}${prefix}/${hashOf(dep)}.narinfo`, { headers: { Authorization: writeAuth() } }).then((res) => res.status);
    expect([await narinfo('/team'), await narinfo('')]).toEqual([404, 200]);
  });

  it('no token or a read-only token: the push fails, the store and staging are unchanged', async () => {
    const b = build('b', salt + '-denied');
    const rows = storeRows();
    for (const netrc of [undefined, readNetrc]) {
      const r = await push([b], netrc);
      expect(r.code).not.toBe(0);
    }
    expect(storeRows()).toEqual(rows);
    expect(stagedFiles()).toEqual([]);
    expect(await validInOrigin(b)).toBe(false);
  });

  it('tampered uploads get a 4xx with one line and never become valid', async () => {
    // A path with contents of its own (a NAR nobody uploaded before).
    writeFileSync(join(s.dir, 'tamper-me'), randomBytes(3000));
    const shared = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', join(s.dir, 'tamper-me')], { env: nixEnv(), encoding: 'utf8' }).trim();
    const nar = narDump(shared);
    const xz = execFileSync('xz', ['-c'], { input: nar });
    const file = `${nix32(sha(xz))}.nar.xz`;
    const info = (o: { narHash?: string; narSize?: number; refs?: string; url?: string; fileSize?: number; storePath?: string }) =>
      `StorePath: ${o.storePath ?? shared}\nURL: ${o.url ?? `nar/${file}`}\nCompression: xz\nFileHash: sha256:${(o.url ?? file).replace(/^nar\//, '').slice(0, 52)}\n` +
      `FileSize: ${o.fileSize ?? xz.length}\n` +
      `NarHash: ${o.narHash ?? `sha256:${nix32(sha(nar))}`}\nNarSize: ${o.narSize ?? nar.length}\nReferences: ${o.refs ?? ''}\n`;
    const narinfoPath = `/${hashOf(shared)}.narinfo`;
    const expect4xx = async (res: Response, re: RegExp) => {
      const text = await res.text();
      expect({ status: res.status, text }).toEqual({ status: expect.any(Number), text: expect.stringMatching(re) });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(text.trimEnd().split('\n')).toHaveLength(1);
    };

    // NAR bytes changed under a name they do not hash to.
    const changed = Buffer.from(xz);
    changed[changed.length - 20]! ^= 1;
    await expect4xx(await put(`/nar/${file}`, changed), /file hash mismatch/);
    // The narinfo before its NAR.
    await expect4xx(await put(narinfoPath, info({})), /unknown NAR file/);
    expect((await put(`/nar/${file}`, xz)).status).toBe(200);
    // NarHash or NarSize changed. A refused narinfo takes its staged NAR with it: Nix uploads both again.
    await expect4xx(await put(narinfoPath, info({ narHash: `sha256:${nix32(sha(Buffer.from('other')))}` })), /hash mismatch/);
    expect(stagedFiles()).toEqual([]);
    await expect4xx(await put(narinfoPath, info({ narSize: nar.length + 1 })), /unknown NAR file/);
    expect((await put(`/nar/${file}`, xz)).status).toBe(200);
    await expect4xx(await put(narinfoPath, info({ narSize: nar.length + 1 })), /NarSize/);
    // A reference that is not in the cache.
    expect((await put(`/nar/${file}`, xz)).status).toBe(200);
    await expect4xx(await put(narinfoPath, info({ refs: `${'0'.repeat(32)}-not-pushed` })), /missing reference/);
    // A StorePath outside the store, or under another hash.
    await expect4xx(await put(narinfoPath, info({ storePath: `/tmp/store/${shared.slice(11)}` })), /not a store path/);
    await expect4xx(await put(`/${'1'.repeat(32)}.narinfo`, info({})), /does not belong/);
    expect((await put(`/nar/${file}`, xz)).status).toBe(200);
    // A compressed file that is not xz at all (but named by its hash).
    const junk = randomBytes(500);
    expect((await put(`/nar/${nix32(sha(junk))}.nar.xz`, junk)).status).toBe(200);
    await expect4xx(await put(narinfoPath, info({ url: `nar/${nix32(sha(junk))}.nar.xz`, fileSize: junk.length })), /does not decompress as xz/);
    expect(await validInOrigin(shared)).toBe(false);
    expect(stagedFiles()).toEqual([`default/${file}`]);
    expect(existsSync(join(root, shared))).toBe(false);
    // The honest narinfo still goes through afterwards.
    const ok = await put(narinfoPath, info({}));
    expect(await ok.text()).toMatch(/imported/);
    expect(await validInOrigin(shared)).toBe(true);
    // Again: already in the cache, a no-op 200.
    expect((await put(`/nar/${file}`, xz)).status).toBe(200);
    const again = await put(narinfoPath, info({}));
    expect(again.status).toBe(200);
    expect(await again.text()).toMatch(/already in the cache/);
  });

  it('listing, build log and realisation uploads are accepted (so nix copy and copy-log succeed); malformed names are 400', async () => {
    const h = '0'.repeat(32);
    for (const [path, body] of [[`/${h}.ls`, '{"version":1,"root":{"type":"regular","size":1}}'], [`/log/${h}-x.drv`, 'build log\n'],
      [`/realisations/sha256:${'a'.repeat(64)}!out.doi`, '{}']] as const) {
      const res = await put(path, body);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
    }
    for (const path of ['/nar/short.nar.xz', `/nar/${'0'.repeat(52)}.nar.gz`, '/log/not-a-drv', `/realisations/x.doi`]) {
      const res = await put(path, 'x');
      expect({ path, status: res.status, lines: (await res.text()).trimEnd().split('\n').length }).toEqual({ path, status: 400, lines: 1 });
    }
  });

  it('an upload cut mid-body leaves nothing behind', async () => {
    const body = randomBytes(1_000_000);
    const name = `${nix32(sha(body))}.nar`;
    await new Promise<void>((resolve) => {
      const sock = connect(s.edge.port, '127.0.0.1', () => {
        sock.write(`PUT /nar/${name} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${writeAuth()}\r\nContent-Length: ${body.length}\r\n\r\n`);
        sock.write(body.subarray(0, 400_000), () => setTimeout(() => (sock.destroy(), resolve()), 500));
      });
      sock.on('error', () => {});
    });
    const deadline = Date.now() + 15_000;
    while (stagedFiles().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(stagedFiles()).toEqual([]);
    expect((await fetch(`${proxy.url}/nar/${name}`, { method: 'HEAD', headers: { Authorization: writeAuth() } })).status).toBe(404);
  });

  it('two clients pushing overlapping closures at once both succeed', async () => {
    const s2 = salt + '-both';
    const [a, b] = [build('a', s2), build('b', s2)];
    const [ra, rb] = await Promise.all([push([a], s.netrc), push([b], s.netrc)]);
    expect({ a: ra.code, b: rb.code, ea: ra.stderr.match(/error.*/)?.[0], eb: rb.stderr.match(/error.*/)?.[0] }).toEqual({ a: 0, b: 0, ea: undefined, eb: undefined });
    for (const p of new Set([...closureOf(a), ...closureOf(b)])) expect(await validInOrigin(p)).toBe(true);
    // Each path went into the store once: the second narinfo of the shared path found it there.
    const imports = (p: string) => s.origin.output().split('\n').filter((l) => l.includes('"msg":"push: imported"') && l.includes(`"path":"${p}"`)).length;
    for (const p of new Set([...closureOf(a), ...closureOf(b)])) expect({ p, imports: imports(p) }).toEqual({ p, imports: 1 });
  });

  it('a read-only token, another cache\'s write token and an expired one are refused (401) and nothing reaches the store or staging', async () => {
    // The Worker answers these before reading the body (worker/routes/push.test.ts holds it to that with a body it
    // must not touch); wrangler dev itself waits for the whole request before answering, so here the body is sent.
    const { teamWriter: other, expiredWriter: expired } = s.tokens as { teamWriter: string; expiredWriter: string };
    const reader = readFileSync(readNetrc, 'utf8').trim().split(' ').pop()!;
    const body = randomBytes(1_000_000);
    const name = `${nix32(sha(body))}.nar`;
    for (const [user, token, cache] of [['reader', reader, ''], ['team-writer', other, ''], ['expired-writer', expired, ''], ['reader', reader, '/team']] as const) {
      for (const path of [`${cache}/nar/${name}`, `${cache}/${'1'.repeat(32)}.narinfo`]) {
        const res = await put(path, body, `Basic ${btoa(`${user}:${token}`)}`);
        expect({ user, path, status: res.status }).toEqual({ user, path, status: 401 });
      }
    }
    expect(stagedFiles()).toEqual([]);
    // And nix copy with the other cache's token or the expired one fails, leaving the store as it was.
    const b = build('b', salt + '-wrong-token');
    for (const [user, token] of [['team-writer', other], ['expired-writer', expired]]) {
      const netrc = join(s.dir, `netrc-${user}`);
      writeFileSync(netrc, `machine 127.0.0.1 login ${user} password ${token}\n`);
      expect((await push([b], netrc)).code).not.toBe(0);
    }
    expect(await validInOrigin(b)).toBe(false);
  }, 240_000);

  it('a NAR over MAX_UPLOAD_BYTES gets 413 naming eris push (and ssh + eris publish), and nothing is imported', async () => {
    const file = join(s.dir, `big-${salt}`);
    writeFileSync(file, randomBytes(MAX_UPLOAD + 100_000));
    const big = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', file], { env: nixEnv(), encoding: 'utf8' }).trim();
    const r = await push([big], s.netrc);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/413/);
    const refused = proxy.seen.filter((x) => x.method === 'PUT' && x.status === 413);
    expect(refused.length).toBeGreaterThan(0);
    const res = await put(`/nar/${'0'.repeat(52)}.nar`, randomBytes(MAX_UPLOAD + 1));
    expect(res.status).toBe(413);
    expect(await res.text()).toMatch(/eris push --cache default PATH.*ssh.*eris publish/);
    expect(await validInOrigin(big)).toBe(false);
    expect(stagedFiles()).toEqual([]);
    mkdirSync(join(s.dir, 'done'), { recursive: true });
  });
});
