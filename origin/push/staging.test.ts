/** The staging area's bounds: space (413 never fits, 503 full now), time (sweep), and nothing left by a cut body. */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createStaging, SMALL_UPLOAD_BYTES } from './staging.ts';
import { PushError } from './errors.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const files = (dir: string) => (existsSync(join(dir, 'staging', 'c')) ? readdirSync(join(dir, 'staging', 'c')) : []);

describe('staging', () => {
  it('stores a body under its name with its size and SHA-256', async () => {
    const dir = tempDir('eris-staging-');
    const s = createStaging({ dir, maxBytes: 1000, ttlMs: 60_000 });
    const f = await s.receive('c', 'a.nar', Readable.from([Buffer.from('hello '), Buffer.from('world')]), 11);
    expect(f.size).toBe(11);
    expect(f.sha256.toString('hex')).toBe('b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9');
    expect(await s.find('c', 'a.nar')).toEqual({ path: f.path, size: 11 });
  });

  it('413 for an upload that never fits, 503 + Retry-After while full, and room again after a sweep', async () => {
    const dir = tempDir('eris-staging-');
    const s = createStaging({ dir, maxBytes: 100, ttlMs: 60_000 });
    await expect(s.receive('c', 'big.nar', Readable.from([Buffer.alloc(101)]), 101)).rejects.toMatchObject({ status: 413 });
    await s.receive('c', 'one.nar', Readable.from([Buffer.alloc(80)]), 80);
    const full = await s.receive('c', 'two.nar', Readable.from([Buffer.alloc(30)]), 30).catch((e: PushError) => e);
    expect(full).toMatchObject({ status: 503 });
    expect((full as PushError).retryAfterSeconds).toBeGreaterThan(0);
    // An abandoned push: its file is older than the time bound.
    const old = (Date.now() - 120_000) / 1000;
    utimesSync(join(dir, 'staging/c/one.nar'), old, old);
    expect(await s.sweep()).toBe(1);
    expect(files(dir)).toEqual([]);
    await s.receive('c', 'two.nar', Readable.from([Buffer.alloc(30)]), 30);
  });

  // Small uploads are received in memory, larger ones streamed to disk: both ways.
  for (const length of [50, SMALL_UPLOAD_BYTES + 50]) {
    it(`a body that ends early, runs long or errors leaves nothing behind (${length} bytes declared)`, async () => {
      const dir = tempDir('eris-staging-');
      const s = createStaging({ dir, maxBytes: 10 * SMALL_UPLOAD_BYTES, ttlMs: 60_000 });
      await expect(s.receive('c', 'short.nar', Readable.from([Buffer.alloc(length - 10)]), length)).rejects.toMatchObject({ status: 400 });
      await expect(s.receive('c', 'long.nar', Readable.from([Buffer.alloc(length), Buffer.alloc(1)]), length)).rejects.toMatchObject({ status: 400 });
      const broken = new Readable({
        read() {
          this.push(Buffer.alloc(10));
          this.destroy(new Error('ECONNRESET'));
        },
      });
      await expect(s.receive('c', 'cut.nar', broken, length)).rejects.toMatchObject({ status: 400 });
      expect(files(dir)).toEqual([]);
      const f = await s.receive('c', 'whole.nar', Readable.from([Buffer.alloc(length - 10), Buffer.alloc(10, 1)]), length);
      expect(f.size).toBe(length);
      expect(f.sha256).toEqual(createHash('sha256').update(Buffer.alloc(length - 10)).update(Buffer.alloc(10, 1)).digest());
      expect(files(dir)).toEqual(['whole.nar']);
    });
  }
});
