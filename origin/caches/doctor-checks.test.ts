/** `eris doctor` on caches: roots that do not resolve fail, exclusions are reported, a running origin's keys are compared. */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addFakePaths, fakeStorePath } from '../../test/helpers/synthetic-db.ts';
import { checkCaches, compareServedCaches } from './doctor-checks.ts';
import type { Check } from '../cli/doctor/check.ts';
import { resolveConfig } from '../config/index.ts';

let root: string;
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('doctor: caches', () => {
  it('fails a cache whose root dangles or is not valid, and reports what exclusions leave out', async () => {
    root = mkdtempSync(join(tmpdir(), 'eris-doctor-caches-'));
    mkdirSync(join(root, 'nix/store'), { recursive: true });
    mkdirSync(join(root, 'nix/var/nix/db'), { recursive: true });
    addFakePaths(join(root, 'nix/var/nix/db/db.sqlite'), [{ name: 'secrets' }, { name: 'app', refs: ['secrets'] }, { name: 'tool' }]);
    mkdirSync(join(root, 'nix/var/nix/gcroots/eris/ci'), { recursive: true });
    symlinkSync(fakeStorePath('gone'), join(root, 'nix/var/nix/gcroots/eris/ci/gone'));
    const config = resolveConfig({
      file: {
        storeRoot: root, signKeyPaths: ['/k.sec'], edgeSecret: 'doctor-caches-secret-0123',
        caches: [{ name: 'ci' }, { name: 'ok', roots: [fakeStorePath('app'), fakeStorePath('tool')], exclude: ['secrets'] }, { name: 'empty' }],
      },
      env: {},
    });
    const checks: Check[] = [];
    await checkCaches(config, checks);
    expect(checks).toEqual([
      { status: 'FAIL', what: 'cache ci roots', detail: `/nix/var/nix/gcroots/eris/ci/gone: ${fakeStorePath('gone')} is not a valid path in the store — fix or remove the root (eris unpublish, or the config's roots)` },
      { status: 'ok', what: 'cache ok', detail: 'priority 30, 1 key(s); 2 root(s), 1 paths, 1000 B' },
      { status: 'ok', what: 'cache ok exclusions', detail: '2 path(s) not published: 1 matching "secrets", 1 because their closure holds one (`eris published --cache ok` lists them)' },
      { status: 'ok', what: 'cache empty', detail: 'priority 30, 1 key(s); 0 root(s), 0 paths, 0 B' },
      { status: 'ok', what: 'cache empty roots', detail: 'none yet: it publishes nothing until `eris publish PATH... --cache empty`' },
    ]);
    const served: Check[] = [];
    compareServedCaches(config, { caches: [{ name: 'ci', priority: 30, publicKeys: ['k-1:x'], default: false }, { name: 'ok', priority: 30, publicKeys: ['other:y'], default: false }] },
      () => ['k-1:x'], served);
    expect(served.map((c) => c.status + ' ' + c.what)).toEqual(['ok origin cache ci', 'FAIL origin cache ok', 'FAIL origin cache empty']);
  });
});
