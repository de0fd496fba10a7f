/**
 * Retention with real Nix 2.8 on a chroot store, served by `eris serve` behind
 * `wrangler dev`: `eris gc` drops the roots past keep_days that nothing of
 * their closure was fetched for (ages set on the links and in usage.sqlite),
 * keeps used ones, config roots and pins; max_bytes drops the least recently
 * used first, counting shared paths once; `--delete` has Nix delete the
 * dropped paths, and every path still published stays served and copyable; a
 * dry run changes nothing. The disk guard: with push_dir a small tmpfs
 * (root only) nearly full, a push gets 507 and one line through the edge,
 * nothing staged, and succeeds once space is freed. Three pushes with `eris push --pin main
 * --keep-revisions 2` leave the last two pinned; the first goes with its root.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readlinkSync, rmSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { NIX_FLAGS, hashOf, nixEnv, runNix } from '../helpers/nix.ts';
import { eris, erisAsync } from '../helpers/processes.ts';
import { storeHas, until } from '../helpers/faults.ts';
import { nixCopyFrom, useStack } from '../helpers/stack.ts';
import { UsageDb } from '../../origin/usage/db.ts';
import { openJournal } from '../../origin/retention/journal.ts';

const fixture = inject('fixture');
const retentionNix = new URL('../fixtures/retention.nix', import.meta.url).pathname;
const DAY = 86_400_000;
const MiB = 1024 * 1024;
// The disk guard's case mounts a small tmpfs as push_dir: root only (CI runs as root).
const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version'], { stdio: 'ignore' }).status === 0;
if (!canMount && process.env.CI === 'true' && fixture) throw new Error('the disk guard case needs root (mount -t tmpfs) under CI');
const NAMES = ['base', 'oldLib', 'usedLib', 'old', 'used', 'fresh', 'cfg', 'pinned', 'rev1', 'rev2', 'rev3', 'shared', 'a', 'b', 'c', 'd'] as const;
type Name = (typeof NAMES)[number];

describe.skipIf(!fixture)('retention, pins and eris gc with real Nix', () => {
  let built: Record<Name, string>;
  let root: string;
  let config: string;
  let narSize: (p: string) => number;
  let pushDir: string;
  let mounted = false;

  const s = useStack(() => ({
    caches: ['ci', 'lru'],
    scopes: ['read', 'write'],
    root: (dir: string) => {
      root = join(dir, 'root');
      const env = nixEnv();
      const out = execFileSync('nix-build', [retentionNix, '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', '', ...NAMES.flatMap((n) => ['-A', n])], { env, encoding: 'utf8' });
      const paths = out.trim().split('\n');
      built = Object.fromEntries(NAMES.map((n, i) => [n, paths[i]!])) as Record<Name, string>;
      execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, ...paths], { env, stdio: 'pipe' });
      const db = new DatabaseSync(join(root, 'nix/var/nix/db/db.sqlite'), { readOnly: true });
      const sizes = new Map((db.prepare('SELECT path, narSize FROM ValidPaths').all() as { path: string; narSize: number }[]).map((r) => [r.path, r.narSize]));
      db.close();
      narSize = (p) => sizes.get(p)!;

      // A config root (as a profile would be), outside eris's own directory.
      mkdirSync(join(root, 'nix/var/nix/gcroots/profiles-test'), { recursive: true });
      symlinkSync(built.cfg, join(root, 'nix/var/nix/gcroots/profiles-test/cfg'));
      // Room for shared + two of a/b/c, not three; counted per root (shared twice) only one would fit.
      const maxBytes = narSize(built.shared) + narSize(built.b) + narSize(built.c) + 512;
      pushDir = join(dir, 'push');
      mkdirSync(pushDir);
      if (canMount) {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'tmpfs', pushDir]);
        mounted = true;
      }
      config = join(dir, 'eris.toml');
      writeFileSync(config, [
        `store_root = "${root}"`, `state_dir = "${join(dir, 'state')}"`, `push_dir = "${pushDir}"`, 'min_free_bytes = "8M"',
        `sign_key_paths = ["${join(dir, 'cache.sec')}"]`, 'default_cache = "ci"',
        '[[cache]]', 'name = "ci"', 'keep_days = 30', 'roots = ["/nix/var/nix/gcroots/profiles-test"]',
        '[[cache]]', 'name = "lru"', `max_bytes = ${maxBytes}`, '',
      ].join('\n'));

      const cli = (...args: string[]) => {
        const r = eris([...args, '--config', config]);
        if (r.status !== 0) throw new Error(`eris ${args.join(' ')}: ${r.stderr}`);
        return r.stdout;
      };
      cli('publish', built.old, built.used, built.fresh, '--cache', 'ci');
      cli('pin', 'release', built.pinned, '--cache', 'ci');
      cli('publish', built.a, built.b, built.c, '--cache', 'lru');
      // Pushed 40 days ago; `used` had a path of its closure fetched 2 days ago, `old` nothing.
      age('ci', built.old, 40);
      age('ci', built.used, 40);
      age('lru', built.a, 3);
      age('lru', built.b, 1);
      age('lru', built.c, 2);
      const usage = UsageDb.open(join(dir, 'state'));
      const day = new Date(Date.now() - 2 * DAY).toISOString().slice(0, 10);
      usage.add([], [{ day, user: 'ci', token: '', cache: 'ci', path: built.usedLib, nars: 1, bytes: narSize(built.usedLib) }]);
      usage.close();
      // Today's daily sweeps count as done (as another worker would have claimed them): the cases below
      // sweep by hand, and the origin's own first look (a minute after start) must not beat them to it.
      const journal = openJournal(join(dir, 'state'));
      for (const c of ['ci', 'lru']) journal.claimSweep(c, Date.now(), 0);
      journal.close();
      return root;
    },
    originArgs: () => ['--config', config],
  }));

  afterAll(() => {
    if (mounted) spawnSync('umount', ['-l', pushDir]);
  });

  // A socket of its own per request, and a request the edge closed unanswered (wrangler dev under load,
  // right after a blocking eris gc) is asked again: the answer's status is what the cases assert.
  const edgeGet = async (path: string): Promise<Response> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await s.get(path, { headers: { Connection: 'close' } });
      } catch (e) {
        if (attempt === 3) throw e;
      }
    }
  };
  const age = (cache: string, p: string, days: number) => {
    const t = new Date(Date.now() - days * DAY);
    lutimesSync(join(root, 'nix/var/nix/gcroots/eris', cache, p.slice('/nix/store/'.length)), t, t);
  };
  const gc = (...args: string[]) => eris(['gc', ...args, '--config', config], { timeoutMs: 120_000 });
  const links = (cache: string) => readdirSync(join(root, 'nix/var/nix/gcroots/eris', cache)).filter((n) => n !== 'pins').sort();
  const snapshot = () => {
    const dir = join(root, 'nix/var/nix/gcroots/eris');
    const entries = execFileSync('find', [dir, '-printf', '%p %l %T@\n'], { encoding: 'utf8' });
    const db = new DatabaseSync(join(root, 'nix/var/nix/db/db.sqlite'), { readOnly: true });
    const paths = (db.prepare('SELECT path FROM ValidPaths ORDER BY path').all() as { path: string }[]).map((r) => r.path).join(' ');
    db.close();
    return { entries, paths, state: readdirSync(join(s.dir, 'state')).sort() };
  };

  it('a dry run says what would go and changes nothing', () => {
    const before = snapshot();
    const r = gc('--cache', 'ci', '--dry-run', '--delete');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`drop /nix/var/nix/gcroots/eris/ci/${built.old.slice(11)} -> ${built.old}`);
    expect(r.stdout).toMatch(/unused for 40 days \(keep_days = 30\)/);
    expect(r.stdout).not.toContain(`-> ${built.used} `);
    // old and its own library can go; base stays (fresh holds it).
    expect(r.stdout).toContain(`the store can free 2 paths, ${((narSize(built.old) + narSize(built.oldLib)) / 1024).toFixed(1)} KiB`);
    expect(r.stdout).toContain('dry run: nothing changed');
    // eris published says the same per root, with the last use.
    const pub = eris(['published', '--cache', 'ci', '--config', config]);
    expect(pub.status, pub.stderr).toBe(0);
    const line = (p: string) => pub.stdout.split('\n').find((l) => l.includes(`-> ${p} `)) ?? '';
    expect(line(built.old)).toMatch(/last used \d{4}-\d\d-\d\d; dropped by the next sweep: unused for 40 days/);
    // Fetched 2 days ago: counted at the end of that (UTC) day.
    expect(line(built.used)).toMatch(/kept: used 1 day ago/);
    expect(line(built.pinned)).toMatch(/kept: pin release/);
    expect(line(built.cfg)).toMatch(/kept: config root/);
    expect(snapshot()).toEqual(before);
  });

  it('keep_days: the unused root goes and Nix deletes its dead paths; used roots, config roots and pins stay, all still served and copyable', async () => {
    const r = gc('--cache', 'ci', '--delete');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('dropped 1 root');
    expect(r.stdout).toMatch(/nix-store --delete: 2 paths deleted/);
    expect(links('ci')).toEqual([built.fresh, built.used].map((p) => p.slice(11)).sort());
    expect(storeHas(root, built.old)).toBe(false);
    expect(storeHas(root, built.oldLib)).toBe(false);
    for (const p of [built.base, built.used, built.usedLib, built.fresh, built.cfg, built.pinned]) expect(storeHas(root, p), p).toBe(true);

    // The origin follows (roots are polled): old is no longer served, the rest is, and copies closure-complete.
    expect(await until(async () => (await edgeGet(`/ci/${hashOf(built.old)}.narinfo`)).status === 404, 10_000, 200)).toBe(true);
    for (const p of [built.used, built.fresh, built.cfg, built.pinned]) expect((await edgeGet(`/ci/${hashOf(p)}.narinfo`)).status, p).toBe(200);
    const copy = await nixCopyFrom(s, { from: `${s.edge.url}/ci`, to: join(s.dir, 'client'), paths: [built.used, built.fresh, built.cfg, built.pinned] });
    expect(copy.code, copy.stderr).toBe(0);
    for (const p of [built.usedLib, built.base]) expect(storeHas(join(s.dir, 'client'), p), p).toBe(true);
  }, 180_000);

  it('max_bytes: the least recently used root goes first, shared paths counted once', () => {
    const r = gc('--cache', 'lru');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`drop /nix/var/nix/gcroots/eris/lru/${built.a.slice(11)} -> ${built.a}`);
    expect(r.stdout).toMatch(/over max_bytes/);
    expect(links('lru')).toEqual([built.b, built.c].map((p) => p.slice(11)).sort());
    // Dropping removes eris's root only: without --delete the path stays until a GC.
    expect(storeHas(root, built.a)).toBe(true);
    expect(lstatSync(join(root, 'nix/var/nix/gcroots/eris/lru', built.b.slice(11))).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(root, 'nix/var/nix/gcroots/eris/lru', built.c.slice(11)))).toBe(built.c);
  });

  it('a push that crosses max_bytes: the origin sweeps by itself within seconds and lets the least recently used root go', async () => {
    // lru holds b (used 1 day ago) and c (2 days ago) up to max_bytes; d makes one too many.
    const r = await erisAsync(['push', '--cache', 'lru', built.d], { env: nixEnv({ ERIS_TOKEN: s.token, ERIS_URL: s.edge.url }), timeoutMs: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(await until(() => links('lru').join(' ') === [built.b, built.d].map((p) => p.slice(11)).sort().join(' '), 30_000, 200), links('lru').join(' ')).toBe(true);
    // The worker thread unlinks, then the origin logs what it dropped.
    expect(await until(() => /"msg":"retention sweep","cache":"lru","dropped":1/.test(s.origin.output()), 10_000), 'no sweep logged').toBe(true);
  }, 120_000);

  it('three pushes with eris push --pin main --keep-revisions 2 leave the last two pinned; the first goes with its root', async () => {
    const env = nixEnv({ ERIS_TOKEN: s.token, ERIS_URL: s.edge.url });
    for (const p of [built.rev1, built.rev2, built.rev3]) {
      const r = await erisAsync(['push', '--cache', 'ci', '--pin', 'main', '--keep-revisions', '2', p], { env, timeoutMs: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain(`pinned main -> ${p} in cache ci`);
    }
    const pins = eris(['pins', '--cache', 'ci', '--json', '--config', config]);
    expect(pins.status, pins.stderr).toBe(0);
    const main = (JSON.parse(pins.stdout) as { pins: { pin: string; revision: number; storePath: string }[] }).pins.filter((r) => r.pin === 'main');
    expect(main.map((r) => [r.revision, r.storePath])).toEqual([[2, built.rev2], [3, built.rev3]]);

    // The pushes' own roots age past keep_days: retention drops all three, the pin keeps the last two.
    for (const p of [built.rev1, built.rev2, built.rev3]) age('ci', p, 40);
    const r = gc('--cache', 'ci', '--delete');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('dropped 3 roots');
    expect(storeHas(root, built.rev1)).toBe(false);
    for (const p of [built.rev2, built.rev3]) expect(storeHas(root, p), p).toBe(true);
    expect(await until(async () => (await edgeGet(`/ci/${hashOf(built.rev1)}.narinfo`)).status === 404, 10_000, 200)).toBe(true);
    for (const p of [built.rev2, built.rev3]) expect((await edgeGet(`/ci/${hashOf(p)}.narinfo`)).status, p).toBe(200);
  }, 240_000);

  it.skipIf(!canMount)('disk guard: a push into a nearly full push_dir gets 507 and one line, leaves nothing, and succeeds once space is freed', async () => {
    // A 6 MiB path in the client's (this machine's) store; the same bytes every run, so the same path.
    const file = join(s.dir, 'payload.bin');
    writeFileSync(file, Buffer.alloc(6 * MiB, 'eris disk guard '));
    const path = execFileSync('nix', [...NIX_FLAGS, 'store', 'add-file', file], { env: nixEnv(), encoding: 'utf8' }).trim();
    // The tmpfs (24 MiB) filled up to 10 MiB free (kept NAR files of the earlier pushes take a little):
    // 6 more would leave 4 < min_free_bytes (8).
    const filler = join(pushDir, 'filler');
    const st = statfsSync(pushDir);
    writeFileSync(filler, Buffer.alloc(st.bavail * st.bsize - 10 * MiB, 1));
    const staged = () => {
      const st = join(pushDir, 'staging');
      return existsSync(st) ? readdirSync(st).flatMap((c) => readdirSync(join(st, c))) : [];
    };
    const push = () => runNix(['copy', '--to', `${s.edge.url}/ci?compression=none`, path, '--option', 'netrc-file', s.netrc, '--option', 'download-attempts', '1'], { timeoutMs: 120_000 });
    try {
      const refused = await push();
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/507/);
      expect(refused.stderr).toMatch(/not enough disk space: push_dir .* has 10\.0 MiB free; this needs 6\.0 MiB and min_free_bytes keeps 8\.0 MiB/);
      // The edge passes the status and the single line on.
      const direct = await fetch(`${s.edge.url}/ci/nar/${'0'.repeat(52)}.nar`, { method: 'PUT', body: Buffer.alloc(6 * MiB), headers: { ...s.auth, Connection: 'close' } });
      const body = await direct.text();
      expect(direct.status, body).toBe(507);
      expect(body.trim().split('\n')).toHaveLength(1);
      expect(staged()).toEqual([]);
      expect(storeHas(root, path)).toBe(false);
      // /metrics and eris doctor show the free space.
      const metrics = await (await s.direct('/metrics')).text();
      const free = Number(/^eris_push_dir_free_bytes (\d+)$/m.exec(metrics)?.[1]);
      expect(free).toBeGreaterThan(9 * MiB);
      expect(free).toBeLessThan(11 * MiB);
      expect(metrics).toMatch(/^eris_store_free_bytes \d+$/m);
      const doctor = eris(['doctor', '--config', config, '--bind', `127.0.0.1:${s.origin.port}`], { env: { ...process.env, ERIS_EDGE_SECRET: s.secret } });
      expect(doctor.stdout).toMatch(/^ok   disk space push_dir: .*: 10\.0 MiB free of 24\.0 MiB; min_free_bytes 8\.0 MiB$/m);
    } finally {
      rmSync(filler, { force: true });
    }
    const ok = await push();
    expect(ok.code, ok.stderr).toBe(0);
    expect(storeHas(root, path)).toBe(true);
  }, 180_000);
});
