/** The batch framing of eris push: what the client encodes the origin decodes, and what is wrong is named. */
import { describe, expect, it } from 'vitest';
import { BATCH_MAGIC, decodeBatch, encodeBatch, MAX_BATCH_NAR_BYTES } from './push-protocol.ts';

const nar = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('batch framing', () => {
  it('round-trips entries of any narinfo text and NAR bytes', () => {
    const entries = [{ narinfo: 'StorePath: /nix/store/a\nNarSize: 8\n', nar: nar(8, 1) }, { narinfo: 'ü\n', nar: nar(1000, 2) }];
    const body = encodeBatch(entries);
    expect(body.length).toBe(BATCH_MAGIC.length + 2 * 8 + entries.reduce((a, e) => a + new TextEncoder().encode(e.narinfo).length + e.nar.length, 0));
    const back = decodeBatch(body);
    expect(typeof back).not.toBe('string');
    expect((back as typeof entries).map((e) => ({ narinfo: e.narinfo, nar: [...e.nar] }))).toEqual(entries.map((e) => ({ narinfo: e.narinfo, nar: [...e.nar] })));
  });

  it('names what is wrong: no magic, a cut header or entry, lengths out of bounds, no entries, bad UTF-8', () => {
    const body = encodeBatch([{ narinfo: 'x', nar: nar(16, 0) }, { narinfo: 'y', nar: nar(16, 0) }]);
    expect(decodeBatch(new TextEncoder().encode('garbage'))).toMatch(/does not start with/);
    expect(decodeBatch(body.subarray(0, body.length - 1))).toBe('batch body ends inside entry 2 (16 of its 17 bytes)');
    expect(decodeBatch(body.subarray(0, BATCH_MAGIC.length + 4))).toMatch(/ends inside the header of entry 1/);
    expect(decodeBatch(encodeBatch([]))).toBe('batch has no entries');
    expect(decodeBatch(encodeBatch([{ narinfo: 'x', nar: nar(4, 0) }]))).toMatch(/entry 1: NAR length 4 is not within/);
    expect(decodeBatch(encodeBatch([{ narinfo: 'x', nar: nar(MAX_BATCH_NAR_BYTES + 1, 0) }]))).toMatch(/larger paths go in parts/);
    const bad = encodeBatch([{ narinfo: 'xy', nar: nar(8, 0) }]);
    bad[BATCH_MAGIC.length + 8] = 0xff;
    expect(decodeBatch(bad)).toBe('entry 1: narinfo is not UTF-8');
  });
});
