/** Published sets from a store DB with Nix's schema: closures, roots on disk, exclusions, live updates. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addFakePaths, fakeStorePath, removeFakePaths } from '../../test/helpers/synthetic-db.ts';
import { openClosureDb, type ClosureDb } from '../store/closure-db.ts';
import { computePublished, globToRegExp, publishes, type PublishedSet } from './published.ts';
import { resolveCacheRoots } from './roots.ts';
import { startPublisher } from './publisher.ts';
import { silentLogger } from '../server/log.ts';
import type { CacheConfig } from '../config/index.ts';

const P = (n: string) => fakeStorePath(n);
const H = (n: string) => P(n).slice(11, 43);

let root: string;
let dbPath: string;
let db: ClosureDb;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'eris-published-'));
  mkdirSync(join(root, 'nix/store'), { recursive: true });
  mkdirSync(join(root, 'nix/var/nix/db'), { recursive: true });
  dbPath = join(root, 'nix/var/nix/db/db.sqlite');
  // app -> lib -> secrets, app -> libc; tool -> libc; lonely is referenced by nothing.
  addFakePaths(dbPath, [
    { name: 'libc', narSize: 100 },
    { name: 'secrets', narSize: 1 },
    { name: 'lib', refs: ['lib', 'secrets'], narSize: 10 },
    { name: 'app', refs: ['lib', 'libc'], deriver: 'app.drv' },
    { name: 'tool', refs: ['libc'], narSize: 5 },
    { name: 'lonely' },
  ]);
  db = openClosureDb(dbPath);
});
afterEach(() => {
  db.close();
  rmSync(root, { recursive: true, force: true });
});

const hashes = (s: PublishedSet) => [...s.members].sort();
const roots = (...names: string[]) => names.map((n) => ({ source: P(n), storePath: P(n) }));

/** Every published path's references are published: never half a closure. */
function expectClosed(set: PublishedSet, refs: Record<string, string[]>) {
  for (const [n, rs] of Object.entries(refs)) if (publishes(set, H(n))) for (const r of rs) expect(publishes(set, H(r)), `${n} -> ${r}`).toBe(true);
}
const REFS = { app: ['lib', 'libc'], lib: ['secrets'], tool: ['libc'] };

describe('published sets', () => {
  it('is the closure of the roots over Refs, with sizes and the derivers of its paths', async () => {
    const set = await computePublished(db, { publish: 'roots', roots: roots('app'), exclude: [] });
    expect(hashes(set)).toEqual(['app', 'lib', 'secrets', 'libc'].map(H).sort());
    expect(set.narBytes).toBe(1000 + 10 + 1 + 100);
    expect([...set.derivers]).toEqual([P('app.drv').slice(11)]);
    expect(publishes(set, H('tool'))).toBe(false);
    expectClosed(set, REFS);
  });

  it('leaves out a path matching an exclude pattern and every path whose closure holds it, saying why', async () => {
    const set = await computePublished(db, { publish: 'roots', roots: roots('app', 'tool'), exclude: ['secret?'] });
    expect(hashes(set)).toEqual(['tool', 'libc'].map(H).sort());
    expect(set.exclusions).toEqual([
      { storePath: P('app'), reason: `depends on ${P('secrets')}` },
      { storePath: P('lib'), reason: `depends on ${P('secrets')}` },
      { storePath: P('secrets'), reason: 'matches "secret?"' },
    ].sort((a, b) => a.storePath.localeCompare(b.storePath)));
    expectClosed(set, REFS);
  });

  it('publish = "all" is every valid path, minus the same exclusions', async () => {
    const all = await computePublished(db, { publish: 'all', roots: [], exclude: [] });
    for (const n of ['app', 'lib', 'secrets', 'libc', 'tool', 'lonely']) expect(publishes(all, H(n))).toBe(true);
    const some = await computePublished(db, { publish: 'all', roots: [], exclude: ['*ecre*'] });
    expect(['app', 'lib', 'secrets', 'libc', 'tool', 'lonely'].filter((n) => publishes(some, H(n)))).toEqual(['libc', 'tool', 'lonely']);
    expect(some.exclusions.map((e) => e.storePath).sort()).toEqual([P('app'), P('lib'), P('secrets')].sort());
  });

  it('globs match the whole name after the hash', () => {
    expect(globToRegExp('*-secrets*').test('my-secrets-1')).toBe(true);
    expect(globToRegExp('*.drv').test('hello.drv')).toBe(true);
    expect(globToRegExp('*.drv').test('hello.drvx')).toBe(false);
    expect(globToRegExp('a+b').test('a+b')).toBe(true);
    expect(globToRegExp('[!x]y').test('zy')).toBe(true);
    expect(globToRegExp('[!x]y').test('xy')).toBe(false);
  });

  it('reads roots under the store root: store paths, link chains (profiles), directories of links, the gcroots dir', () => {
    mkdirSync(join(root, 'nix/var/nix/profiles'), { recursive: true });
    symlinkSync(P('app'), join(root, 'nix/var/nix/profiles/system-1-link'));
    symlinkSync('system-1-link', join(root, 'nix/var/nix/profiles/system'));
    mkdirSync(join(root, 'srv/ci/nested'), { recursive: true });
    symlinkSync(P('tool') + '/bin/tool', join(root, 'srv/ci/tool'));
    symlinkSync('/nowhere', join(root, 'srv/ci/nested/dangling'));
    mkdirSync(join(root, 'nix/var/nix/gcroots/eris/team'), { recursive: true });
    symlinkSync(P('lonely'), join(root, 'nix/var/nix/gcroots/eris/team', 'lonely'));
    const r = resolveCacheRoots(root, '/nix/store', 'team', ['/nix/var/nix/profiles/system', '/srv/ci', P('libc'), '/missing']);
    expect(r).toEqual([
      { source: '/nix/var/nix/profiles/system', storePath: P('app') },
      { source: '/srv/ci/nested/dangling', problem: 'dangling link to /nowhere' },
      { source: '/srv/ci/tool', storePath: P('tool') },
      { source: P('libc'), storePath: P('libc') },
      { source: '/missing', problem: 'does not exist' },
      { source: '/nix/var/nix/gcroots/eris/team/lonely', storePath: P('lonely') },
    ]);
  });

  it('reports a root that is not a valid path', async () => {
    const set = await computePublished(db, { publish: 'roots', roots: [{ source: '/x', storePath: P('gone') }], exclude: [] });
    expect(set.members.size).toBe(0);
    expect(set.roots[0]!.problem).toBe(`${P('gone')} is not a valid path in the store`);
  });
});

describe('the publisher', () => {
  const cache = (o: Partial<CacheConfig> = {}): CacheConfig => ({ name: 'team', publish: 'roots', roots: [], exclude: [], signKeyPaths: [], priority: 30, ...o });
  const gc = () => join(root, 'nix/var/nix/gcroots/eris/team');

  it('refreshes asked for while a pass runs share one pass after it, which sees the roots made before they asked', async () => {
    // Passes counted where each starts: reading the DB's data_version (the DB in this thread).
    let passes = 0;
    const counting: ClosureDb = { ...db, dataVersion: () => (passes++, db.dataVersion()) };
    const pub = await startPublisher({ storeRoot: root, storeDir: '/nix/store', dbPath, caches: [cache()], log: silentLogger, pollMs: 60_000, db: counting });
    try {
      mkdirSync(gc(), { recursive: true });
      passes = 0;
      const first = pub.refresh(); // a pass running (what the timer or an earlier push started)
      while (passes === 0) await new Promise((r) => setImmediate(r));
      // A batch of pushed paths: each makes its root, then asks for the set to follow.
      const batch = ['tool', 'app', 'lonely'].map((n) => {
        symlinkSync(P(n), join(gc(), n));
        return pub.refresh();
      });
      await Promise.all([first, ...batch]);
      for (const n of ['tool', 'app', 'lonely']) expect(pub.has('team', H(n))).toBe(true);
      expect(passes).toBe(2); // the running pass and the one queued after it, not one per path
    } finally {
      pub.close();
    }
  });

  it('follows new roots, removed roots and DB changes without a restart (timer alone, within ~1 s)', async () => {
    const pub = await startPublisher({ storeRoot: root, storeDir: '/nix/store', dbPath, caches: [cache(), cache({ name: 'all', publish: 'all' })], log: silentLogger, pollMs: 100 });
    try {
      expect(pub.has('team', H('tool'))).toBe(false);
      expect(pub.has('all', H('tool'))).toBe(true);
      const until = async (cond: () => boolean) => {
        const deadline = Date.now() + 2000;
        while (!cond()) {
          if (Date.now() > deadline) throw new Error('not within 2 s');
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      mkdirSync(gc(), { recursive: true });
      symlinkSync(P('tool'), join(gc(), 'tool'));
      await until(() => pub.has('team', H('tool')) && pub.has('team', H('libc')));
      // A path registered later and referenced by a new root: the DB changed, the set follows.
      addFakePaths(dbPath, [{ name: 'late', refs: ['tool'] }]);
      symlinkSync(P('late'), join(gc(), 'late'));
      await until(() => pub.has('team', H('late')));
      unlinkSync(join(gc(), 'tool'));
      unlinkSync(join(gc(), 'late'));
      await until(() => !pub.has('team', H('tool')) && !pub.has('team', H('late')));
      // Collected paths leave the set even while a root still names them.
      symlinkSync(P('lonely'), join(gc(), 'lonely'));
      await until(() => pub.has('team', H('lonely')));
      removeFakePaths(dbPath, ['lonely']);
      await until(() => !pub.has('team', H('lonely')));
    } finally {
      pub.close();
    }
  });
});
