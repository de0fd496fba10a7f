/**
 * A large NAR's bytes for its parts (nar-upload.ts's openNar), against real Nix 2.8 on a chroot store: read
 * from the path's files here, or dumped by Nix when the store is not a directory here; the same
 * bytes either way, and files of another NarSize than Nix registered are refused before the last part goes (a NAR
 * of the right size but not of its NarHash is refused by the origin: test/e2e/eris-push.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NIX_FLAGS, nixEnv, nixMissing } from '../../../test/helpers/nix.ts';
import { tempDir } from '../../../test/helpers/temp-dir.ts';
import { parsePathInfoJson, type LocalPath } from './closure.ts';
import { openNar } from './nar-upload.ts';

async function readAll(nar: ReturnType<typeof openNar>): Promise<Buffer> {
  const parts: Buffer[] = [];
  // Copied as ExactReader does: the files' chunks are recycled once the next one is asked for.
  for await (const chunk of nar.chunks) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

describe.skipIf(nixMissing)('the NAR of a large path for its parts', () => {
  const dir = tempDir('eris-nar-upload-');
  const root = join(dir, 'root');
  const src = join(dir, 'big');
  mkdirSync(join(src, 'bin'), { recursive: true });
  // Over 1 MiB so the files are read in several chunks; an executable, a symlink, a nested directory.
  writeFileSync(join(src, 'data'), Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 5 }, (_, i) => (i * 31) % 253)));
  writeFileSync(join(src, 'bin', 'run'), '#!/bin/sh\necho hi\n');
  chmodSync(join(src, 'bin', 'run'), 0o755);
  symlinkSync('bin/run', join(src, 'link'));
  const env = nixEnv();
  const path = execFileSync('nix-store', ['--store', root, '--add', src], { env, encoding: 'utf8' }).trim();
  const info: LocalPath = parsePathInfoJson(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', '--store', root, path], { env, encoding: 'utf8' }))[0]!;
  const dumped = execFileSync('nix', [...NIX_FLAGS, 'store', 'dump-path', '--store', root, path], { env, maxBuffer: 64 << 20 });

  it('reads the files of a chroot store in process: the bytes nix-store --dump gives, checked against NarSize', async () => {
    const nar = openNar({ store: root }, info);
    expect(nar.what).toContain(join(root, path));
    expect((await readAll(nar)).equals(dumped)).toBe(true);
    expect(() => nar.check()).not.toThrow();
  });

  it('a store that is not a directory here (a store URI) is dumped by Nix (nix store dump-path --store): the same bytes', async () => {
    const nar = openNar({ store: `local?root=${root}` }, info);
    expect(nar.what).toBe('the NAR Nix dumped');
    expect((await readAll(nar)).equals(dumped)).toBe(true);
  });

  it('files of another size than the NAR Nix registered are refused once read (before the last part goes)', async () => {
    const short = openNar({ store: root }, { ...info, narSize: info.narSize + 8 });
    await expect(readAll(short)).rejects.toThrow(/registered/);
  });
});
