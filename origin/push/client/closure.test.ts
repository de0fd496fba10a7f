/** The client's closure: path-info JSON of old and new Nix, references first, exact reads. */
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ExactReader, parsePathInfoJson, referencesFirst, storePathOf, type LocalPath } from './closure.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';

const P = (n: string) => `/nix/store/${n.repeat(32)}-${n}`;
// The same hash as Nix 2.8 prints it in path-info --json and in nix-store -q --hash (eris-leaf of the fixture).
const SRI = 'sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=';

describe('push client closure', () => {
  it('reads nix path-info --json as Nix 2.8 (a list) and newer Nix (an object by path) print it', () => {
    const v28 = parsePathInfoJson(JSON.stringify([{ path: P('a'), narHash: SRI, narSize: 120, references: [P('b')], deriver: P('d'), signatures: ['k:s'] }]));
    const v2x = parsePathInfoJson(JSON.stringify({ [P('a')]: { narHash: SRI, narSize: 120, references: [P('b')], deriver: P('d'), signatures: ['k:s'], ca: null } }));
    const want: LocalPath = { path: P('a'), narHash: 'sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw', narSize: 120, references: [P('b')], deriver: P('d'), signatures: ['k:s'] };
    expect(v28).toEqual([want]);
    expect(v2x).toEqual([want]);
    expect(() => parsePathInfoJson(JSON.stringify({ [P('a')]: null }))).toThrow(/not valid/);
  });

  it('orders every path after its references, cycles through self-references aside', () => {
    const mk = (n: string, refs: string[]): LocalPath => ({ path: P(n), narHash: '', narSize: 0, references: refs.map(P), signatures: [] });
    const paths = [mk('a', ['a', 'b', 'c']), mk('b', ['c']), mk('c', []), mk('d', ['a'])];
    const order = referencesFirst(paths).map((p) => p.path);
    expect(order).toHaveLength(4);
    for (const p of paths) for (const r of p.references) if (r !== p.path) expect(order.indexOf(r)).toBeLessThan(order.indexOf(p.path));
  });

  it('takes a store path, a file in one, or a link to either (./result)', () => {
    const dir = tempDir('eris-push-args-');
    const leaf = '/nix/store/3dav1qihi863ffxpxss2fy0qx0g2b2lq-eris-leaf';
    symlinkSync(`${leaf}/sub/file`, join(dir, 'result'));
    expect(storePathOf(leaf)).toBe(leaf);
    expect(storePathOf(`${leaf}/sub/file`)).toBe(leaf);
    expect(() => storePathOf(join(dir, 'result'))).toThrow(/no such file/); // dangling: not in this store
    symlinkSync(leaf, join(dir, 'result2'));
    if (existsSync(leaf)) expect(storePathOf(join(dir, 'result2'))).toBe(leaf);
    expect(() => storePathOf(dir)).toThrow(/not a store path/);
  });

  it('reads exact byte counts across chunk boundaries and skips', async () => {
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256));
    const r = new ExactReader(Readable.from([data.subarray(0, 7), data.subarray(7, 500), data.subarray(500)]));
    expect(await r.skip(3)).toBe(3);
    expect((await r.read(10)).equals(data.subarray(3, 13))).toBe(true);
    expect((await r.read(600)).equals(data.subarray(13, 613))).toBe(true);
    expect((await r.read(1000)).equals(data.subarray(613))).toBe(true);
    expect((await r.read(5)).length).toBe(0);
  });
});
