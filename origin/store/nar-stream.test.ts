import { describe, expect, inject, it } from 'vitest';
import { appendFileSync, writeFileSync, mkdirSync, symlinkSync, chmodSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { checkedNar, narBuffer, narChunks, narListing, narRange, NarSourceChangedError } from './nar-stream.ts';
import { nixEnv, NIX_FLAGS, nixMissing } from '../../test/helpers/nix.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const fixture = inject('fixture');

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

/** A tree with every node kind, odd names and a file big enough to be read in several chunks. */
function makeTree(): string {
  const dir = tempDir('eris-nar-');
  const root = join(dir, 'tree');
  mkdirSync(join(root, 'sub/empty'), { recursive: true });
  writeFileSync(join(root, 'big'), Buffer.from(Array.from({ length: 700_001 }, (_, i) => (i * 31) & 0xff)));
  writeFileSync(join(root, 'sub/exe'), '#!/bin/sh\n');
  chmodSync(join(root, 'sub/exe'), 0o755);
  writeFileSync(join(root, 'empty-file'), '');
  writeFileSync(join(root, 'Z'), 'z');
  writeFileSync(join(root, 'a b'), 'space');
  writeFileSync(join(root, Buffer.from([0x6e, 0xc3, 0xa9]).toString()), 'utf8 name');
  symlinkSync('sub/exe', join(root, 'link'));
  symlinkSync('/nonexistent/target', join(root, 'dangling'));
  return root;
}

describe.skipIf(nixMissing)('NAR serialisation', () => {
  const tree = makeTree();
  const nix = () => execFileSync('nix-store', ['--dump', tree], { env: nixEnv(), maxBuffer: 1 << 28 });

  it('equals nix-store --dump for every node kind, odd names and a multi-chunk file', async () => {
    expect((await collect(narChunks(tree))).equals(nix())).toBe(true);
  });

  it('makes the same bytes whole with synchronous reads (narBuffer), and refuses a size other than the registered one', async () => {
    const whole = nix();
    expect((await narBuffer(tree, whole.length)).equals(whole)).toBe(true);
    await expect(narBuffer(tree, whole.length - 8)).rejects.toBeInstanceOf(NarSourceChangedError);
    await expect(narBuffer(tree, whole.length + 8)).rejects.toBeInstanceOf(NarSourceChangedError);
  });

  it('streams a NAR that grew since registration only up to the registered size, then fails (the connection is cut)', async () => {
    const dir = tempDir('eris-nar-grew-');
    writeFileSync(join(dir, 'f'), Buffer.alloc(200_000, 1));
    const registered = execFileSync('nix-store', ['--dump', dir], { env: nixEnv(), maxBuffer: 1 << 28 }).length;
    appendFileSync(join(dir, 'f'), Buffer.alloc(100, 2));
    let sent = 0;
    await expect((async () => {
      for await (const c of checkedNar(dir, registered)) sent += c.length;
    })()).rejects.toBeInstanceOf(NarSourceChangedError);
    expect(sent).toBeLessThanOrEqual(registered);
  });

  it('serves any byte range equal to the same slice of the whole NAR', async () => {
    const whole = nix();
    const ranges: [number, number][] = [[0, 1], [0, whole.length], [100, 200], [600_000, whole.length], [whole.length - 1, whole.length], [250_000, 250_008], [7, 700_100]];
    for (const [s, e] of ranges) {
      expect((await collect(narRange(tree, s, e))).equals(whole.subarray(s, e))).toBe(true);
    }
  });

  it('lists the tree with sizes and NAR offsets that point at the file contents', async () => {
    const whole = nix();
    const ls = await narListing(tree);
    expect(ls.version).toBe(1);
    if (ls.root.type !== 'directory') throw new Error('root is not a directory');
    const big = ls.root.entries['big'];
    expect(big).toMatchObject({ type: 'regular', size: 700_001 });
    if (big?.type !== 'regular') throw new Error('no big');
    expect(whole.subarray(big.narOffset, big.narOffset + 5)).toEqual(Buffer.from([0, 31, 62, 93, 124]));
    expect(ls.root.entries['link']).toEqual({ type: 'symlink', target: 'sub/exe' });
    const sub = ls.root.entries['sub'];
    expect(sub?.type === 'directory' && sub.entries['exe']).toMatchObject({ type: 'regular', executable: true, size: 10 });
    expect(sub?.type === 'directory' && sub.entries['empty']).toEqual({ type: 'directory', entries: {} });
  });

  it.skipIf(!fixture)('lists a store path as nix store ls --json does', async () => {
    const path = fixture!.closure.find((p) => p.endsWith('-eris-dep'))!;
    const nixLs = JSON.parse(execFileSync('nix', [...NIX_FLAGS, 'store', 'ls', '--store', fixture!.root, '--json', '-R', path], { env: nixEnv(), encoding: 'utf8' }));
    const strip = (n: Record<string, unknown>): unknown => {
      const { narOffset: _o, ...rest } = n;
      if (rest.entries) rest.entries = Object.fromEntries(Object.entries(rest.entries as Record<string, Record<string, unknown>>).map(([k, v]) => [k, strip(v)]));
      if (rest.executable === false) delete rest.executable;
      return rest;
    };
    expect(strip((await narListing(join(fixture!.root, path))).root as unknown as Record<string, unknown>)).toEqual(strip(nixLs));
  });
});
