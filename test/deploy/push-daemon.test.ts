/**
 * Push in the deployed shape (what the NixOS module sets up): a `nix-daemon`
 * owns the store (a chroot store here, its socket in the test's directory),
 * the origin runs as an unprivileged user made for the test and imports
 * through that daemon's socket, and the daemon's nix.conf trusts the default
 * cache's key — and nothing else. A real Nix 2.8 `nix copy --to` through
 * `wrangler dev` lands valid in the daemon's store; a push to a cache whose
 * key the daemon does not trust is refused with the doctor's explanation and
 * imports nothing. GC-safe serving in this shape: a NAR streaming to a client
 * holds a temporary root taken through the daemon (AddTempRoot needs no trust),
 * so nix-store --delete refuses the path until the download has ended.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { NIX_FLAGS, nixEnv, runNix } from '../helpers/nix.ts';
import { ERIS_CLI, type RunAs } from '../helpers/processes.ts';
import { useStack } from '../helpers/stack.ts';
import { until } from '../helpers/faults.ts';
import { untrustedKeyAdvice } from '../../origin/push/trust-advice.ts';

const fixture = inject('fixture');
const PUSH_NIX = new URL('../fixtures/push.nix', import.meta.url).pathname;
const canMakeUsers = process.getuid?.() === 0 && spawnSync('useradd', ['--help'], { stdio: 'ignore' }).status === 0;

function build(attr: string, salt: string): string {
  return execFileSync('nix-build', [PUSH_NIX, '-A', attr, '--argstr', 'salt', salt, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''],
    { env: nixEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

const closureOf = (p: string) => execFileSync('nix-store', ['-qR', p], { env: nixEnv(), encoding: 'utf8' }).trim().split('\n');

describe.skipIf(!fixture || !canMakeUsers)('push, deployed: an unprivileged origin imports through the nix-daemon', () => {
  const userName = `eris-t${randomBytes(3).toString('hex')}`;
  let user: RunAs;
  let root: string;
  let daemon: ChildProcess | undefined;
  let dbHold: DatabaseSync | undefined;
  let otherKey: string;
  let confDir: string;
  const salt = randomBytes(6).toString('hex');

  beforeAll(() => {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', userName]);
    user = { uid: Number(execFileSync('id', ['-u', userName], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', userName], { encoding: 'utf8' })) };
  });

  const s = useStack(() => ({
    keyBy: 'nix',
    keyName: 'deployed-cache-1',
    root(dir) {
      chmodSync(dir, 0o755); // the origin's user must reach its files in here
      root = join(dir, 'root');
      const seed = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
      execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, seed], { env: nixEnv() });
      // A second cache with a key of its own, which the daemon is not told to trust.
      execFileSync('nix-store', ['--generate-binary-cache-key', 'deployed-other-1', join(dir, 'other.sec'), join(dir, 'other.pub')], { env: nixEnv() });
      otherKey = readFileSync(join(dir, 'other.pub'), 'utf8').trim();
      writeFileSync(join(dir, 'eris.toml'), `push_store = "unix://${join(dir, 'state/daemon-socket/socket')}"\n\n` +
        `[[cache]]\nname = "default"\npublish = "all"\n\n[[cache]]\nname = "other"\npublish = "roots"\nsign_key_paths = ["${join(dir, 'other.sec')}"]\n`);

      // The box's Nix: its nix.conf trusts the default cache's key; the origin's user is not a trusted-user.
      confDir = join(dir, 'etc/nix');
      mkdirSync(confDir, { recursive: true });
      writeFileSync(join(confDir, 'nix.conf'), `trusted-public-keys = ${readFileSync(join(dir, 'cache.pub'), 'utf8').trim()}\nrequire-sigs = true\n` +
        'trusted-users = root\nbuild-users-group =\nsandbox = false\nsubstituters =\n');
      daemon = spawn('nix-daemon', ['--store', root], {
        env: { PATH: process.env.PATH, NIX_CONF_DIR: confDir, NIX_STATE_DIR: join(dir, 'state'), NIX_REMOTE: '' },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      // As the NixOS module's ExecStartPre: root opens the WAL DB read-only so its -wal/-shm exist for the origin.
      dbHold = new DatabaseSync(join(root, 'nix/var/nix/db/db.sqlite'), { readOnly: true });
      dbHold.prepare('SELECT 1 FROM ValidPaths LIMIT 0').all();

      // What the module gives the origin's user: its key files, its state, the GC roots of pushed paths.
      for (const f of ['cache.sec', 'other.sec']) chownSync(join(dir, f), user.uid, user.gid);
      for (const d of ['push', 'origin-state', 'home', 'root/nix/var/nix/gcroots/eris']) {
        mkdirSync(join(dir, d), { recursive: true });
        chownSync(join(dir, d), user.uid, user.gid);
      }
      return root;
    },
    originArgs: (dir) => ['--config', join(dir, 'eris.toml'), '--push-dir', join(dir, 'push'), '--state-dir', join(dir, 'origin-state')],
    originUser: user,
    originEnv: { HOME: '/nonexistent' },
    user: 'runner',
    scopes: ['read', 'write'],
    caches: ['default', 'other'],
  }));

  afterAll(async () => {
    // Before the stack's own afterAll: userdel refuses a user with a running process.
    await Promise.resolve().then(() => s.origin.stop()).catch(() => {}); // (no stack when its start failed)
    dbHold?.close();
    if (daemon && daemon.exitCode === null) {
      const gone = new Promise((r) => daemon!.once('exit', r));
      daemon.kill('SIGTERM');
      await gone;
    }
    const del = spawnSync('userdel', [userName], { encoding: 'utf8' });
    if (del.status !== 0) throw new Error(`userdel ${userName}: ${del.stderr.trim()}`);
  });

  const validInDaemonStore = (p: string) => spawnSync('nix-store', ['--store', root, '--check-validity', p], { env: nixEnv(), stdio: 'ignore' }).status === 0;
  const push = (paths: string[], cache = '') =>
    runNix(['copy', '--to', `${s.edge.url}${cache}?compression=zstd`, ...paths, '--option', 'netrc-file', s.netrc,
      '--option', 'connect-timeout', '5', '--option', 'download-attempts', '1'], { timeoutMs: 180_000 });

  it('the origin runs as the unprivileged user, and the daemon does not count it as trusted', () => {
    const status = readFileSync(`/proc/${s.origin.child!.pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\s+${user.uid}\\s+${user.uid}\\s`, 'm'));
    expect(readFileSync(join(confDir, 'nix.conf'), 'utf8')).not.toContain(userName);
  });

  it('a real nix copy through wrangler dev lands valid in the daemon\'s store, rooted by the origin\'s user', async () => {
    const a = build('a', salt);
    const r = await push([a]);
    expect({ code: r.code, error: r.stderr.match(/error.*/)?.[0] }).toEqual({ code: 0, error: undefined });
    for (const p of closureOf(a)) expect(validInDaemonStore(p)).toBe(true);
    const rootLink = join(root, 'nix/var/nix/gcroots/eris/default', a.slice('/nix/store/'.length));
    expect(readlinkSync(rootLink)).toBe(a);
    // The daemon registered it (signed by the cache key it trusts), not the origin: the DB row carries that signature.
    const info = JSON.parse(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', '--store', root, a], { env: nixEnv(), encoding: 'utf8' }))[0];
    expect(info.signatures.some((sig: string) => sig.startsWith('deployed-cache-1:'))).toBe(true);
    // Served back through the edge.
    expect((await s.get(`/${a.slice(11, 43)}.narinfo`)).status).toBe(200);
  });

  it('a NAR streaming to a client is held by a temporary root taken through the daemon: Nix refuses to delete it until the download ends', async () => {
    const file = join(s.dir, 'streamed.bin');
    writeFileSync(file, randomBytes(32 * 1024 * 1024));
    // In the daemon's store, rooted by nothing: only the origin's temporary root can keep it.
    const big = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', '--store', root, file], { env: nixEnv(), encoding: 'utf8' }).trim();
    const del = () => spawnSync('nix-store', ['--store', root, '--delete', big], { env: nixEnv(), encoding: 'utf8' });
    const narinfo = await (await s.get(`/${big.slice(11, 43)}.narinfo`)).text();
    const url = /^URL: (.*)$/m.exec(narinfo)![1]!;
    const narSize = Number(/^NarSize: (\d+)$/m.exec(narinfo)![1]);
    const res = await s.get(`/${url}`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let received = (await reader.read()).value?.length ?? 0;
    // The client reads nothing more meanwhile: the body is still streaming.
    const refused = del();
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/still alive/);
    for (let r = await reader.read(); !r.done; r = await reader.read()) received += r.value.length;
    expect(received).toBe(narSize);
    // The root goes with the daemon connection, within seconds of the response's end.
    expect(await until(() => del().status === 0, 20_000, 500)).toBe(true);
  }, 120_000);

  it('a cache whose key the daemon does not trust: the push is refused with the doctor\'s explanation, nothing is imported', async () => {
    const b = build('b', `${salt}-other`);
    const before = closureOf(b).filter(validInDaemonStore);
    const r = await push([b], '/other');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(untrustedKeyAdvice(otherKey));
    expect(validInDaemonStore(b)).toBe(false);
    expect(closureOf(b).filter(validInDaemonStore)).toEqual(before);
    expect(existsSync(join(root, 'nix/var/nix/gcroots/eris/other', b.slice('/nix/store/'.length)))).toBe(false);

    // eris doctor, as the origin's user reading the daemon's nix.conf, says the same.
    const doctor = spawnSync(process.execPath, [...ERIS_CLI, 'doctor', '--config', join(s.dir, 'eris.toml'), '--store-root', root, '--sign-key', s.keyFile,
      '--push-dir', join(s.dir, 'push'), '--state-dir', join(s.dir, 'origin-state')], {
      encoding: 'utf8', uid: user.uid, gid: user.gid, timeout: 120_000,
      env: { ...process.env, HOME: join(s.dir, 'home'), NIX_CONF_DIR: confDir, ERIS_EDGE_SECRET: s.secret },
    });
    const line = doctor.stdout.split('\n').find((l) => l.includes('push trust'));
    expect(line).toContain('FAIL');
    expect(line).toContain(untrustedKeyAdvice(otherKey));
  });
});
