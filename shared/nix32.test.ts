import { describe, expect, it } from 'vitest';
import { decodeNix32, encodeNix32, isNix32, nix32Length } from './nix32.ts';
import { bytesToHex, formatSha256Nix32, hexToBytes, parseSha256 } from './hash.ts';
import { goldenDbRows, goldenNarInfos, goldenPathInfo } from '../test/fixtures/golden.ts';
import { parseNarInfo } from './narinfo.ts';

describe('nix32', () => {
  it('turns the hex hashes db.sqlite stores into the nix32 NarHash that Nix writes in narinfo', () => {
    const infos = new Map(goldenNarInfos().map(({ text }) => {
      const n = parseNarInfo(text);
      return [n.storePath, n.narHash];
    }));
    const rows = goldenDbRows();
    expect(rows.length).toBe(3);
    for (const row of rows) {
      expect(formatSha256Nix32(parseSha256(row.hash))).toBe(infos.get(row.path));
    }
  });

  it('agrees with the SRI hashes of nix path-info --json', () => {
    const rows = new Map(goldenDbRows().map((r) => [r.path, r.hash]));
    for (const p of goldenPathInfo()) {
      expect('sha256:' + bytesToHex(parseSha256(p.narHash))).toBe(rows.get(p.path));
    }
  });

  it('round-trips bytes of every length', () => {
    for (let len = 0; len <= 64; len++) {
      const bytes = Uint8Array.from({ length: len }, (_, i) => (i * 37 + len) & 0xff);
      const text = encodeNix32(bytes);
      if (len === 0) continue;
      expect(text.length).toBe(nix32Length(len));
      expect(decodeNix32(text)).toEqual(bytes);
    }
  });

  it('decodes a store path hash part to 20 bytes', () => {
    expect(decodeNix32('3dav1qihi863ffxpxss2fy0qx0g2b2lq').length).toBe(20);
    expect(nix32Length(20)).toBe(32);
    expect(nix32Length(32)).toBe(52);
  });

  it('rejects letters outside the alphabet (e o t u) and impossible values', () => {
    expect(isNix32('0123456789abcdfghijklmnpqrsvwxyz')).toBe(true);
    for (const bad of ['e', 'o', 't', 'u', 'A', '/', '.']) {
      expect(isNix32(bad)).toBe(false);
      expect(() => decodeNix32(bad.repeat(52))).toThrow();
    }
    // 52 chars carry 260 bits; 'z' as the leading digit overflows 256 bits.
    expect(() => decodeNix32('z' + '0'.repeat(51))).toThrow(/too large/);
    expect(() => decodeNix32('0'.repeat(51))).toThrow(/length/);
  });

  it('converts hex both ways', () => {
    expect(bytesToHex(hexToBytes('00ff10'))).toBe('00ff10');
    expect(() => hexToBytes('0g')).toThrow();
  });
});
