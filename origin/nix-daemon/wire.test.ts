import { describe, expect, it } from 'vitest';
import { StreamReader } from './reader.ts';
import { PassThrough } from 'node:stream';
import {
  Stderr, WireWriter, bufferSource, frameHeader, frames, plainMessage, readPathInfo, readStderr, readString, readStrings, readU64,
  writePathInfo, type DaemonPathInfo,
} from './wire.ts';

describe('worker protocol wire format', () => {
  it('writes numbers as 64-bit little-endian words and strings padded to 8 bytes', () => {
    expect(new WireWriter().u64(1).toBuffer().toString('hex')).toBe('0100000000000000');
    expect(new WireWriter().u64(2 ** 40 + 5).toBuffer().toString('hex')).toBe('0500000000010000');
    expect(new WireWriter().string('abc').toBuffer().toString('hex')).toBe('0300000000000000' + '6162630000000000');
    expect(new WireWriter().string('12345678').toBuffer().length).toBe(16);
    expect(new WireWriter().string('').toBuffer().length).toBe(8);
    expect(new WireWriter().strings(['a', 'bc']).toBuffer().length).toBe(8 + 16 + 16);
    expect(frameHeader(0).equals(Buffer.alloc(8))).toBe(true);
    expect(() => new WireWriter().u64(-1)).toThrow(RangeError);
  });

  it('cuts data into frames of at most the given size, and empty data into none', async () => {
    const data = Buffer.from(Array.from({ length: 70 }, (_, i) => i));
    const src = bufferSource(frames(data, 32));
    const back: Buffer[] = [];
    for (const want of [32, 32, 6]) {
      expect(await readU64(src)).toBe(want);
      back.push(await src.read(want));
    }
    expect(src.rest()).toBe(0);
    expect(Buffer.concat(back).equals(data)).toBe(true);
    expect(frames(Buffer.alloc(0), 32).length).toBe(0);
    expect(frames(data, 70).equals(Buffer.concat([frameHeader(70), data]))).toBe(true);
  });

  it('reads back what it writes, and refuses bad padding and oversized numbers', async () => {
    const src = bufferSource(new WireWriter().u64(7).string('héllo').strings(['x', 'yz']).toBuffer());
    expect(await readU64(src)).toBe(7);
    expect(await readString(src)).toBe('héllo');
    expect(await readStrings(src)).toEqual(['x', 'yz']);
    expect(src.rest()).toBe(0);
    const bad = new WireWriter().string('a').toBuffer();
    bad[9] = 1;
    await expect(readString(bufferSource(bad))).rejects.toThrow(/padding/);
    await expect(readU64(bufferSource(Buffer.alloc(8, 0xff)))).rejects.toThrow(/too large/);
    await expect(readU64(bufferSource(Buffer.alloc(4)))).rejects.toThrow(/end of data/);
  });

  it('path infos round-trip, references and signatures sorted as Nix keeps them', async () => {
    const info: DaemonPathInfo = {
      path: '/nix/store/aaaa-x', deriver: '', narHash: 'ab'.repeat(32), references: ['/nix/store/c', '/nix/store/b'],
      registrationTime: 0, narSize: 1234, ultimate: false, sigs: ['k2:x', 'k1:y'], ca: '',
    };
    const src = bufferSource(writePathInfo(new WireWriter(), info, true).toBuffer());
    const path = await readString(src);
    expect(await readPathInfo(src, path)).toEqual({ ...info, references: ['/nix/store/b', '/nix/store/c'], sigs: ['k1:y', 'k2:x'] });
  });

  it('reads the stderr messages: log lines, activities, results, structured errors and the end', async () => {
    const w = new WireWriter()
      .u64(Stderr.NEXT).string('\x1b[31;1merror:\x1b[0m something\n')
      .u64(Stderr.START_ACTIVITY).u64(2n ** 60n).u64(3).u64(100).string('copying').u64(2).u64(0).u64(5).u64(1).string('f').u64(0)
      .u64(Stderr.RESULT).u64(2n ** 60n).u64(105).u64(1).u64(0).u64(9)
      .u64(Stderr.STOP_ACTIVITY).u64(2n ** 60n)
      .u64(Stderr.ERROR).string('Error').u64(0).string('Error').string("path '/nix/store/x' is not valid").u64(0).u64(1).u64(0).string('while adding')
      .u64(Stderr.LAST);
    const src = bufferSource(w.toBuffer());
    const log = await readStderr(src, 34);
    expect(log).toEqual({ type: 'log', text: '\x1b[31;1merror:\x1b[0m something' });
    expect(plainMessage((log as { text: string }).text)).toBe('something');
    expect(await readStderr(src, 34)).toMatchObject({ type: 'start', id: 2n ** 60n, activity: 100, text: 'copying', fields: [5n, 'f'] });
    expect(await readStderr(src, 34)).toMatchObject({ type: 'result', result: 105, fields: [9n] });
    expect(await readStderr(src, 34)).toEqual({ type: 'stop', id: 2n ** 60n });
    expect(await readStderr(src, 34)).toEqual({ type: 'error', message: "path '/nix/store/x' is not valid", traces: ['while adding'] });
    expect(await readStderr(src, 34)).toEqual({ type: 'last' });
    // Before 1.26 an error is a message and a status.
    const old = bufferSource(new WireWriter().u64(Stderr.ERROR).string('boom').u64(1).toBuffer());
    expect(await readStderr(old, 25)).toEqual({ type: 'error', message: 'boom', status: 1, traces: [] });
    await expect(readStderr(bufferSource(new WireWriter().u64(42).toBuffer()), 34)).rejects.toThrow(/unknown message/);
  });

  it('a stream reader hands out exact amounts across chunks and fails at the end of the stream', async () => {
    const s = new PassThrough();
    const r = new StreamReader(s, () => new Error('gone'));
    const pending = r.read(10);
    s.write(Buffer.from('abcd'));
    s.write(Buffer.from('efghijkl'));
    expect((await pending).toString()).toBe('abcdefghij');
    expect((await r.read(2)).toString()).toBe('kl');
    const waiting = r.read(1);
    s.end();
    await expect(waiting).rejects.toThrow('gone');
  });
});
