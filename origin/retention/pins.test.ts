import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listPins, pin, PinError, unpin } from './pins.ts';

const p = (n: number) => `/nix/store/${String(n).repeat(32).slice(0, 32)}-app-${n}`;

describe('pins', () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'eris-pins-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  const at = { storeDir: '/nix/store', cache: 'ci' };

  it('keep-revisions keeps the newest N; pinning the newest again adds nothing', () => {
    for (const n of [1, 2, 3]) pin({ ...at, storeRoot: root, name: 'main', storePath: p(n), keepRevisions: 2 });
    const dir = join(root, 'nix/var/nix/gcroots/eris/ci/pins/main');
    expect(readdirSync(dir).sort().map((l) => readlinkSync(join(dir, l)))).toEqual([p(2), p(3)]);
    const again = pin({ ...at, storeRoot: root, name: 'main', storePath: p(3), keepRevisions: 2 });
    expect(again.added).toBe(false);
    expect(listPins(root, '/nix/store', 'ci')).toMatchObject([{ name: 'main', revisions: [{ seq: 2, storePath: p(2) }, { seq: 3, storePath: p(3) }] }]);
  });

  it('without keep-revisions every revision stays; unpin removes the pin', () => {
    for (const n of [1, 2, 3]) pin({ ...at, storeRoot: root, name: 'release-1.2', storePath: p(n) });
    expect(listPins(root, '/nix/store', 'ci')[0]!.revisions.map((r) => r.storePath)).toEqual([p(1), p(2), p(3)]);
    expect(unpin({ ...at, storeRoot: root, name: 'release-1.2' })).toHaveLength(3);
    expect(listPins(root, '/nix/store', 'ci')).toEqual([]);
    expect(() => unpin({ ...at, storeRoot: root, name: 'release-1.2' })).toThrow(/no pin named release-1.2/);
  });

  it('refuses names that are not one path segment', () => {
    expect(() => pin({ ...at, storeRoot: root, name: 'feature/x', storePath: p(1) })).toThrow(PinError);
    expect(() => pin({ ...at, storeRoot: root, name: '..', storePath: p(1) })).toThrow(/not a pin name/);
    expect(() => pin({ ...at, storeRoot: root, name: 'main', storePath: p(1), keepRevisions: 0 })).toThrow(/keep-revisions/);
  });
});
