import { describe, expect, it } from 'vitest';
import { parseNarInfo, renderNarInfo } from './narinfo.ts';
import { goldenNarInfos } from '../test/fixtures/golden.ts';

describe('narinfo', () => {
  it('renders byte for byte what nix copy --to file:// wrote', () => {
    const all = goldenNarInfos();
    expect(all.length).toBe(3);
    for (const { text } of all) expect(renderNarInfo(parseNarInfo(text))).toBe(text);
  });

  it('prints an empty References line with its trailing space and always a Compression', () => {
    const text = renderNarInfo({
      storePath: '/nix/store/3dav1qihi863ffxpxss2fy0qx0g2b2lq-eris-leaf',
      url: 'nar/x.nar',
      compression: 'none',
      narHash: 'sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw',
      narSize: 120,
      references: [],
      sigs: [],
    });
    expect(text).toContain('\nReferences: \n');
    expect(text).toContain('\nCompression: none\n');
    expect(text.endsWith('\n')).toBe(true);
    expect(text).not.toContain('Deriver');
  });

  it('reads a missing Compression as bzip2, as Nix does', () => {
    const info = parseNarInfo('StorePath: /nix/store/a\nURL: u\nNarHash: sha256:x\nNarSize: 1\n');
    expect(info.compression).toBe('bzip2');
  });

  it('rejects narinfo without a required field and values with newlines', () => {
    expect(() => parseNarInfo('StorePath: /nix/store/a\nURL: u\nNarSize: 1\n')).toThrow(/NarHash/);
    expect(() => parseNarInfo('garbage\n')).toThrow();
    expect(() => renderNarInfo({ storePath: 'a\nb', url: 'u', compression: 'none', narHash: 'h', narSize: 1, references: [], sigs: [] })).toThrow();
  });
});
