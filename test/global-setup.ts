/**
 * Builds the fixture store once per test run with real Nix: the closure of
 * fixture.nix's `top`, copied into a chroot store under a temp dir. Tests get
 * its location through inject('fixture'). Without Nix, tests that need it
 * skip — except under CI=true, where a missing Nix is a failure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildFixtureStore, hasNix } from './helpers/nix.ts';
import { stopSharedStack } from './helpers/shared-stack.ts';

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
    /** Where the run's shared stack keeps its state (test/helpers/shared-stack.ts). */
    sharedStackDir: string;
  }
}

export default function setup(project: TestProject) {
  // The shared stack boots only if a test asks for it; this dir is where it keeps its state.
  const shared = mkdtempSync(join(tmpdir(), 'eris-shared-stack-'));
  project.provide('sharedStackDir', shared);
  if (!hasNix()) {
    if (process.env.CI === 'true') throw new Error('CI=true but Nix is not installed (apt-get install nix-bin)');
    project.provide('fixture', null);
    return () => stopSharedStack(shared);
  }
  const dir = mkdtempSync(join(tmpdir(), 'eris-fixture-'));
  const root = join(dir, 'root');
  const { top, closure } = buildFixtureStore(root);
  project.provide('fixture', { root, top, closure });
  return async () => {
    await stopSharedStack(shared);
    rmSync(dir, { recursive: true, force: true });
  };
}
