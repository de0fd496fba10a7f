/** `eris push`'s closure from the store DB: what real Nix's `nix path-info --json --recursive` says, without Nix. */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildFixtureStore, NIX_FLAGS, nixEnv, nixMissing } from '../../../test/helpers/nix.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { localClosure, parsePathInfoJson, type LocalPath } from './closure.ts';
import { closureFromStoreDb, storeDbOf } from './store-db-closure.ts';

const byPath = (paths: LocalPath[]) => [...paths].sort((a, b) => a.path.localeCompare(b.path));

describe.skipIf(nixMissing)('push client closure from the store DB', () => {
  const root = tempDir('eris-push-db-closure-');
  const { top, closure } = buildFixtureStore(root);
  const env = nixEnv();
  const pathInfo = (store: string[]) =>
    parsePathInfoJson(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', '--recursive', ...store, top], { env, encoding: 'utf8' }));

  it('gives what nix path-info gives, for a chroot store root and for this machine\'s store', () => {
    const chroot = closureFromStoreDb({ store: root, env }, [top]);
    expect(chroot).toBeDefined();
    expect(chroot!.length).toBe(closure.length);
    expect(byPath(chroot!)).toEqual(byPath(pathInfo(['--store', root])));
    const here = closureFromStoreDb({ env }, [top]);
    expect(byPath(here!)).toEqual(byPath(pathInfo([])));
  });

  it('is what localClosure uses when it can: no Nix is started (a Nix that cannot run is not noticed)', async () => {
    const source = { store: root, env, nixBin: join(root, 'no-such-nix') };
    const got = await localClosure(source, [top]);
    expect(byPath(got)).toEqual(byPath(pathInfo(['--store', root])));
    // every path after its references
    const at = new Map(got.map((p, i) => [p.path, i]));
    for (const p of got) for (const r of p.references) if (r !== p.path) expect(at.get(r)!).toBeLessThan(at.get(p.path)!);
  });

  it('leaves to nix path-info what it cannot answer: a path not valid there, another kind of store', async () => {
    const absent = `/nix/store/${'0'.repeat(32)}-absent`;
    expect(closureFromStoreDb({ store: root, env }, [top, absent])).toBeUndefined();
    await expect(localClosure({ store: root, env }, [absent])).rejects.toThrow(/nix path-info/);
    expect(closureFromStoreDb({ store: join(root, 'nope'), env }, [top])).toBeUndefined();
    expect(storeDbOf({ store: 'daemon' })).toBeUndefined();
    expect(storeDbOf({ env: { NIX_REMOTE: 'ssh-ng://builder' } })).toBeUndefined();
    expect(storeDbOf({ env: { NIX_STORE_DIR: '/gnu/store' } })).toBeUndefined();
    expect(storeDbOf({ env: { NIX_REMOTE: 'daemon', NIX_STATE_DIR: '/var/nix' } })).toBe('/var/nix/db/db.sqlite');
    expect(storeDbOf({ store: root })).toBe(join(root, 'nix/var/nix/db/db.sqlite'));
  });
});
