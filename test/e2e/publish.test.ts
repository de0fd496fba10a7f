/**
 * `eris publish / unpublish / published` on a chroot store made by real Nix, and
 * Nix's own garbage collector (`nix-collect-garbage`) keeping what is published.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixEnv, NIX_FLAGS } from '../helpers/nix.ts';
import { eris as erisCli } from '../helpers/processes.ts';

const fixture = inject('fixture');
const eris = (...args: string[]) => erisCli(args);

describe.skipIf(!fixture)('eris publish on a chroot store', () => {
  let dir: string;
  let root: string;
  let top: string;
  let dep: string;
  let leaf: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'eris-publish-'));
    root = join(dir, 'root');
    // Our own copy: the shared fixture store must not be garbage-collected.
    execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, fixture!.top], { env: nixEnv(), stdio: 'pipe' });
    top = fixture!.top;
    dep = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
    leaf = fixture!.closure.find((p) => p.endsWith('-eris-leaf'))!;
  });
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

  const gc = () => execFileSync('nix-collect-garbage', ['--store', root], { env: nixEnv(), encoding: 'utf8', stdio: 'pipe' });
  const inStore = (p: string) => existsSync(join(root, p));

  it('publishes a path (by a result link) so nix-collect-garbage keeps its closure; unpublish lets it go', () => {
    const link = join(dir, 'result');
    symlinkSync(dep, link);
    const r = eris('publish', link, '--cache', 'team-a', '--store-root', root);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`published ${dep} in team-a\n`);
    // Again: nothing changes (idempotent).
    expect(eris('publish', dep, '--cache', 'team-a', '--store-root', root).status).toBe(0);

    const listed = eris('published', '--cache', 'team-a', '--store-root', root, '--json');
    expect(listed.status).toBe(0);
    const report = JSON.parse(listed.stdout);
    expect(report).toMatchObject({ cache: 'team-a', publish: 'roots', paths: 2, excluded: [] });
    expect(report.roots).toEqual([
      expect.objectContaining({ source: `/nix/var/nix/gcroots/eris/team-a/${dep.slice(11)}`, storePath: dep, closurePaths: 2 }),
    ]);
    expect(eris('published', '--cache', 'team-a', '--store-root', root).stdout).toMatch(/^cache team-a: 2 paths, .* from 1 root\n/);

    gc();
    expect([inStore(top), inStore(dep), inStore(leaf)]).toEqual([false, true, true]);

    const u = eris('unpublish', dep, '--cache', 'team-a', '--store-root', root);
    expect(u.stdout).toBe(`unpublished ${dep} from team-a\n`);
    gc();
    expect([inStore(dep), inStore(leaf)]).toEqual([false, false]);
  });

  it('refuses, with one line, a path that is not valid in that store, a bad cache name and a missing --cache', () => {
    const bad = [
      eris('publish', top, '--cache', 'team-a', '--store-root', join(dir, 'root')), // collected above... or never copied
      eris('publish', '/etc/passwd', '--cache', 'team-a', '--store-root', root),
      eris('publish', dep, '--cache', 'Team A', '--store-root', root),
      eris('publish', dep, '--store-root', root),
      eris('unpublish', leaf, '--cache', 'team-a', '--store-root', root),
    ];
    for (const r of bad) {
      expect(r.status).not.toBe(0);
      expect(r.stderr.split('\n')[0]).toMatch(/^eris: /);
    }
    expect(bad[0]!.stderr).toMatch(/not valid in the store/);
    expect(bad[2]!.stderr).toMatch(/--cache Team A: expected 1-64 characters/);
    expect(bad[3]!.stderr).toMatch(/--cache NAME is required/);
    expect(bad[4]!.stderr).toMatch(/not published in cache team-a/);
  });
});
