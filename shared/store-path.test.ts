import { describe, expect, it } from 'vitest';
import { isHashPart, isStorePathBaseName, parseStorePath } from './store-path.ts';
import { fingerprint } from './fingerprint.ts';

describe('store paths', () => {
  it('accepts real store paths and splits them', () => {
    expect(parseStorePath('/nix/store/3dav1qihi863ffxpxss2fy0qx0g2b2lq-eris-leaf')).toEqual({
      hashPart: '3dav1qihi863ffxpxss2fy0qx0g2b2lq',
      name: 'eris-leaf',
    });
  });

  it('rejects hash parts of the wrong length or alphabet', () => {
    expect(isHashPart('3dav1qihi863ffxpxss2fy0qx0g2b2lq')).toBe(true);
    expect(isHashPart('3dav1qihi863ffxpxss2fy0qx0g2b2l')).toBe(false);
    expect(isHashPart('3dav1qihi863ffxpxss2fy0qx0g2b2le')).toBe(false);
    expect(isHashPart('../../../../../../../etc/passwd')).toBe(false);
  });

  it('rejects names Nix would not create', () => {
    const h = '3dav1qihi863ffxpxss2fy0qx0g2b2lq';
    expect(isStorePathBaseName(`${h}-ok.name+1`)).toBe(true);
    expect(isStorePathBaseName(`${h}-.hidden`)).toBe(false);
    expect(isStorePathBaseName(`${h}-a/b`)).toBe(false);
    expect(isStorePathBaseName(`${h}-${'x'.repeat(212)}`)).toBe(false);
    expect(() => parseStorePath(`/etc/${h}-x`)).toThrow();
  });

  it('builds the fingerprint Nix signs and insists on a nix32 hash', () => {
    expect(fingerprint('/nix/store/a', 'sha256:' + '0'.repeat(52), 5, ['/nix/store/b', '/nix/store/c']))
      .toBe(`1;/nix/store/a;sha256:${'0'.repeat(52)};5;/nix/store/b,/nix/store/c`);
    expect(() => fingerprint('/nix/store/a', 'sha256:' + 'a'.repeat(64), 5, [])).toThrow();
  });
});
