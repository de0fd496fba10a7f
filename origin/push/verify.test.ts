/** NAR checks with the real codecs: each compression decompresses to exactly NarSize bytes with NarHash, or says what differs. */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { verifyNarFile } from './verify.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const nar = randomBytes(200_000);
const want = { narHash: formatSha256Nix32(createHash('sha256').update(nar).digest()), narSize: nar.length };
const dir = tempDir('eris-verify-');
const file = (name: string, bytes: Buffer) => {
  writeFileSync(join(dir, name), bytes);
  return join(dir, name);
};
const files = {
  none: file('n.nar', nar),
  xz: file('n.nar.xz', execFileSync('xz', ['-c'], { input: nar })),
  zstd: file('n.nar.zst', zstdCompressSync(nar)),
  bzip2: file('n.nar.bz2', execFileSync('bzip2', ['-c'], { input: nar })),
} as const;

const bomb = file('bomb.nar.zst', zstdCompressSync(Buffer.alloc(200_000_000)));
const sizeOf = (path: string) => statSync(path).size;

// Streamed (any file), and read into memory (small none/zstd files): the same verdicts.
for (const [way, inMemoryUpTo] of [['streamed', 0], ['in memory', 1 << 30]] as const) {
  describe(`verifyNarFile, ${way}`, () => {
    const verify = (path: string, c: keyof typeof files, w: typeof want) => verifyNarFile(path, c, w, { fileSize: sizeOf(path), inMemoryUpTo });
    for (const [compression, path] of Object.entries(files)) {
      it(`accepts a right ${compression} NAR and refuses a wrong hash or size`, async () => {
        const c = compression as keyof typeof files;
        const got = await verify(path, c, want);
        // A small none/zstd file's NAR is handed back for the import.
        if (way === 'in memory' && (c === 'none' || c === 'zstd')) expect(got?.equals(nar)).toBe(true);
        else expect(got).toBeUndefined();
        await expect(verify(path, c, { ...want, narHash: formatSha256Nix32(Buffer.alloc(32)) })).rejects.toThrow(/hash mismatch/);
        await expect(verify(path, c, { ...want, narSize: want.narSize + 1 })).rejects.toThrow(/NarSize/);
        await expect(verify(path, c, { ...want, narSize: want.narSize - 1 })).rejects.toThrow(/larger than its NarSize/);
      });
    }

    it('refuses a file that is not what its compression says', async () => {
      for (const c of ['xz', 'zstd', 'bzip2'] as const) {
        await expect(verify(files.none, c, want)).rejects.toMatchObject({ status: 400, message: expect.stringMatching(new RegExp(`does not decompress as ${c}`)) });
      }
    });

    it('stops a decompression bomb at NarSize', async () => {
      const started = performance.now();
      await expect(verify(bomb, 'zstd', { narHash: want.narHash, narSize: 1000 })).rejects.toThrow(/larger than its NarSize/);
      expect(performance.now() - started).toBeLessThan(5000);
    });
  });
}
