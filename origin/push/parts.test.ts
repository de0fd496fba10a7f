/**
 * NARs in parts (parts.ts) on a real staging directory: resuming after a crash cuts off a half-written
 * part; an abandoned upload (no narinfo ever names it) is swept with the staging area's other files;
 * the staging bound applies to parts; a part cut mid-body leaves the upload where it was; parts come in
 * any order and at once, also to two processes of one origin.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { partsNarFile } from '../../shared/push-protocol.ts';
import { createStaging } from './staging.ts';
import { createParts, FOLLOW_TAIL, type FollowOptions } from './parts.ts';
import { until } from '../../test/helpers/faults.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const NAR = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 251));
const start = { storePath: '/nix/store/00000000000000000000000000000000-x', narHash: formatSha256Nix32(createHash('sha256').update(NAR).digest()), narSize: NAR.length };
const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function setup(maxBytes = 1_000_000) {
  const dir = tempDir('eris-parts-');
  const staging = createStaging({ dir, maxBytes, ttlMs: 60_000 });
  const made = () => createParts({ dir: staging.dir, maxBytes, usedBytes: () => staging.usedBytes() });
  const files = () => readdirSync(join(staging.dir, 'c')).sort();
  return { dir, staging, parts: made(), restart: made, files };
}
const send = (p: ReturnType<typeof setup>['parts'], id: string, from: number, to: number, body = NAR.subarray(from, to)) =>
  p.part('c', id, from, hex(NAR.subarray(from, to)), Readable.from([body]), to - from);

describe('NAR uploads in parts', () => {
  it('a restart resumes at the last acknowledged part, whatever was written beyond it', async () => {
    const { staging, parts, restart, files } = setup();
    const u = await parts.begin('c', start);
    expect(await send(parts, u.id, 0, 1000)).toMatchObject({ offset: 1000, complete: false });
    // The process died while writing the next part: its bytes are in the file, never acknowledged.
    appendFileSync(join(staging.dir, 'c', `upload-${u.id}.nar`), NAR.subarray(1000, 1500));
    const again = restart();
    expect(await again.begin('c', start)).toMatchObject({ id: u.id, offset: 1000 });
    await send(again, u.id, 1000, 2000);
    expect(await send(again, u.id, 2000, 3000)).toMatchObject({ complete: true, offset: 3000 });
    expect(files()).toEqual([partsNarFile(start.narHash)]);
    expect(readFileSync(join(staging.dir, 'c', partsNarFile(start.narHash))).equals(NAR)).toBe(true);
    // Started again once complete: nothing more to send.
    expect(await again.begin('c', start)).toMatchObject({ complete: true });
  });

  it('parts in any order and at once, into two processes of one origin (workers): each held once, the NAR whole', async () => {
    const { staging, parts, files } = setup();
    const logged: number[] = [];
    // A second worker process: its own instance on the same staging directory.
    const other = createParts({ dir: staging.dir, maxBytes: 1_000_000, usedBytes: () => staging.usedBytes(), onPart: (p) => logged.push(p.offset) });
    const u = await parts.begin('c', start);
    // Six parts of 500 bytes, sent together, alternating between the two processes, last first.
    const order = [5, 2, 4, 0, 3, 1];
    const states = await Promise.all(order.map((i, k) => send(k % 2 ? other : parts, u.id, i * 500, (i + 1) * 500)));
    expect(states.some((st) => st.complete)).toBe(true);
    expect(logged.sort((a, b) => a - b)).toEqual([0, 500, 1000]); // the other process's parts (order[1], [3], [5]), each acknowledged once
    expect(files()).toEqual([partsNarFile(start.narHash)]);
    expect(readFileSync(join(staging.dir, 'c', partsNarFile(start.narHash))).equals(NAR)).toBe(true);
  });

  it('a part overlapping one held is refused (409) and not kept; the very same part again is answered as held', async () => {
    const { parts } = setup();
    const u = await parts.begin('c', start);
    expect(await send(parts, u.id, 1000, 2000)).toMatchObject({ offset: 0, received: [[1000, 1000]], complete: false });
    await expect(send(parts, u.id, 1500, 2500)).rejects.toMatchObject({ status: 409, message: expect.stringMatching(/overlaps the part held at offset 1000/) });
    expect(await send(parts, u.id, 1000, 2000)).toMatchObject({ received: [[1000, 1000]] });
    expect(await send(parts, u.id, 0, 1000)).toMatchObject({ offset: 2000, received: [[0, 1000], [1000, 1000]] });
    expect(await parts.state('c', u.id)).toMatchObject({ offset: 2000, complete: false });
    expect(await send(parts, u.id, 2000, 3000)).toMatchObject({ complete: true, offset: 3000 });
  });

  it('the NAR hashed while its parts arrive in order is still refused whole when one part is of another NAR (each part of its own hash)', async () => {
    const { parts, files } = setup();
    const u = await parts.begin('c', start);
    await send(parts, u.id, 0, 1000);
    const other = Buffer.alloc(1000, 1);
    await parts.part('c', u.id, 1000, hex(other), Readable.from([other]), 1000);
    await expect(send(parts, u.id, 2000, 3000)).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/hashes to .* not the declared/) });
    expect(files()).toEqual([]);
  });

  it('a part cut mid-body is not acknowledged and leaves the upload at its offset', async () => {
    const { parts } = setup();
    const u = await parts.begin('c', start);
    await send(parts, u.id, 0, 1000);
    const cut = new Readable({
      read() {
        this.push(NAR.subarray(1000, 1200));
        this.destroy(new Error('ECONNRESET'));
      },
    });
    await expect(parts.part('c', u.id, 1000, hex(NAR.subarray(1000, 2000)), cut, 1000)).rejects.toMatchObject({ status: 400 });
    expect(await parts.state('c', u.id)).toMatchObject({ offset: 1000 });
    expect(await send(parts, u.id, 1000, 2000)).toMatchObject({ offset: 2000 });
  });

  it('an upload no narinfo completes is swept with the staging area; the staging bound applies to parts', async () => {
    const { staging, parts, files } = setup(2500);
    const u = await parts.begin('c', start).catch((e) => e);
    expect(u).toMatchObject({ status: 413 }); // larger than the whole staging area
    const small = { ...start, narSize: 2000 };
    const v = await parts.begin('c', small);
    await send(parts, v.id, 0, 1000);
    await staging.receive('c', 'other.nar', Readable.from([Buffer.alloc(1000)]), 1000);
    await expect(send(parts, v.id, 1000, 2000)).rejects.toMatchObject({ status: 503 });
    const old = (Date.now() - 120_000) / 1000;
    for (const f of files()) utimesSync(join(staging.dir, 'c', f), old, old);
    expect(await staging.sweep()).toBe(4); // the record, the data, the held part's marker, the other file
    expect(files()).toEqual([]);
    await expect(parts.state('c', v.id)).rejects.toMatchObject({ status: 404 });
  });
});

describe('follow: an upload\'s NAR in order as its parts arrive (for a daemon importing it meanwhile)', () => {
  const BIG = Buffer.from(Array.from({ length: 400_000 }, (_, i) => (i * 13) % 251));
  const bigStart = { ...start, narHash: formatSha256Nix32(createHash('sha256').update(BIG).digest()), narSize: BIG.length };
  const sendBig = (p: ReturnType<typeof setup>['parts'], id: string, from: number, to: number, sha = hex(BIG.subarray(from, to))) =>
    p.part('c', id, from, sha, Readable.from([BIG.subarray(from, to)]), to - from);
  const collect = (it: AsyncIterable<Buffer>, into: Buffer[]) => (async () => {
    for await (const chunk of it) into.push(Buffer.from(chunk));
  })();
  const size = (bufs: Buffer[]) => bufs.reduce((a, b) => a + b.length, 0);
  /** Follows upload `id` into `got`; `finish` lets its last bytes go and resolves to all it gave. */
  function follower(parts: ReturnType<typeof setup>['parts'], id: string, fo?: FollowOptions) {
    let letGo!: () => void;
    const got: Buffer[] = [];
    const reading = collect(parts.follow('c', id, bigStart, new Promise<void>((resolve) => (letGo = resolve)), fo), got);
    return { got, finish: async () => (letGo(), await reading, Buffer.concat(got)) };
  }

  it('gives the bytes held from 0 on, also those another process took; the last ones only once the NAR is whole and its narinfo let them go', async () => {
    const { staging, parts } = setup();
    const other = createParts({ dir: staging.dir, maxBytes: 1_000_000, usedBytes: () => staging.usedBytes() });
    const u = await parts.begin('c', bigStart);
    let tail = false;
    const { got, finish } = follower(parts, u.id, { onTail: () => (tail = true) });
    await sendBig(parts, u.id, 100_000, 150_000);
    await new Promise((r) => setTimeout(r, 250));
    expect(size(got)).toBe(0); // nothing held from 0 yet
    await sendBig(other, u.id, 0, 100_000); // into the other process: seen on disk
    expect(await until(() => size(got) === 150_000, 5_000, 10)).toBe(true);
    expect(await sendBig(parts, u.id, 150_000, 400_000)).toMatchObject({ complete: true });
    expect(await until(() => tail, 5_000, 10)).toBe(true);
    expect(size(got)).toBe(BIG.length - FOLLOW_TAIL);
    await new Promise((r) => setTimeout(r, 250));
    expect(size(got)).toBe(BIG.length - FOLLOW_TAIL); // held back until the narinfo
    expect((await finish()).equals(BIG)).toBe(true);
  });

  it('the follower hashes what it reads in place of the background pass: parts in any order, a slow reader, the whole still checked', async () => {
    const { parts } = setup();
    const u = await parts.begin('c', bigStart);
    // A reader slower than the parts: the running hash is fed partly by it, partly at completion.
    const got: Buffer[] = [];
    let letGo!: () => void;
    const reading = (async () => {
      for await (const chunk of parts.follow('c', u.id, bigStart, new Promise<void>((r) => (letGo = r)))) {
        got.push(Buffer.from(chunk));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    for (const [from, to] of [[50_000, 100_000], [0, 50_000], [100_000, 300_000]]) await sendBig(parts, u.id, from!, to!);
    expect(await until(() => size(got) >= 100_000, 5_000, 10)).toBe(true);
    expect(await sendBig(parts, u.id, 300_000, 400_000)).toMatchObject({ complete: true });
    letGo();
    await reading;
    expect(Buffer.concat(got).equals(BIG)).toBe(true);

    // Parts each of their own hash, of a NAR that is not the declared one: refused at completion, followed or not.
    const wrong = { ...bigStart, narHash: formatSha256Nix32(createHash('sha256').update('another NAR').digest()) };
    const v = await parts.begin('c', wrong);
    const read: Buffer[] = [];
    const following = collect(parts.follow('c', v.id, wrong, new Promise(() => {})), read);
    following.catch(() => {});
    await sendBig(parts, v.id, 0, 200_000);
    expect(await until(() => size(read) === 200_000, 5_000, 10)).toBe(true);
    await expect(sendBig(parts, v.id, 200_000, 400_000)).rejects.toThrow(/hashes to .*not the declared/);
    await expect(following).rejects.toThrow(/removed/);
  });

  it('followed only once complete (every part came before the daemon was ready): the staged NAR, its last bytes once let go', async () => {
    const { parts } = setup();
    const u = await parts.begin('c', bigStart);
    await sendBig(parts, u.id, 0, 200_000);
    expect(await sendBig(parts, u.id, 200_000, 400_000)).toMatchObject({ complete: true });
    const { got, finish } = follower(parts, u.id);
    expect(await until(() => size(got) === BIG.length - FOLLOW_TAIL, 5_000, 10)).toBe(true);
    expect((await finish()).equals(BIG)).toBe(true);
  });

  it('fails when the upload is removed (a part not of its declared hash), and when nothing arrives for its idle time', async () => {
    const { parts } = setup();
    const u = await parts.begin('c', bigStart);
    const got: Buffer[] = [];
    const reading = collect(parts.follow('c', u.id, bigStart, new Promise(() => {})), got);
    await sendBig(parts, u.id, 0, 100_000);
    await expect(sendBig(parts, u.id, 100_000, 400_000, hex(Buffer.from('other')))).rejects.toThrow(/hashes to/);
    await expect(reading).rejects.toThrow(/removed/);

    const v = await parts.begin('c', bigStart);
    await expect(collect(parts.follow('c', v.id, bigStart, new Promise(() => {}), { idleMs: 300 }), [])).rejects.toThrow(/nothing arrived/);
  });
});
