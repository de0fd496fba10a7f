/**
 * Builds the fixture store once per test run with real Nix: the closure of
 * fixture.nix's `top`, copied into a chroot store under a temp dir. Tests get
 * its location through inject('fixture'). Without Nix, tests that need it
 * skip — except under CI=true, where a missing Nix is a failure.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { nixEnv, hasNix, NIX_FLAGS } from './helpers/nix.ts';

export interface Fixture {
  /** Chroot store root holding nix/store and nix/var/nix/db. */
  root: string;
  /** Full store path of `top` (-> dep -> leaf). */
  top: string;
  /** The closure of top, full paths. */
  closure: string[];
}

declare module 'vitest' {
  export interface ProvidedContext {
    fixture: Fixture | null;
  }
}

export default function setup(project: TestProject) {
  if (!hasNix()) {
    if (process.env.CI === 'true') throw new Error('CI=true but Nix is not installed (apt-get install nix-bin)');
    project.provide('fixture', null);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'eris-fixture-'));
  const env = nixEnv();
  const fixtureNix = new URL('./fixtures/fixture.nix', import.meta.url).pathname;
  const top = execFileSync('nix-build', [fixtureNix, '-A', 'top', '--no-out-link', '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8' }).trim();
  const closure = execFileSync('nix-store', ['-qR', top], { env, encoding: 'utf8' }).trim().split('\n');
  const root = join(dir, 'root');
  execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, top], { env, stdio: 'pipe' });
  project.provide('fixture', { root, top, closure });
  return () => rmSync(dir, { recursive: true, force: true });
}
