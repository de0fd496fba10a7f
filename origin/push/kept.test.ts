/** Kept NAR files stay within push_kept_max_bytes (oldest go first); their records stay. */
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeptFiles } from './kept.ts';

describe('kept files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eris-kept-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('past maxBytes the oldest files go, newest kept, every record stays findable', async () => {
    const kept = createKeptFiles({ dir, maxBytes: 250 });
    const names = Array.from({ length: 5 }, (_, i) => `${String(i).repeat(52)}.nar`);
    for (const [i, name] of names.entries()) {
      const from = join(dir, `upload-${i}`);
      writeFileSync(from, Buffer.alloc(100, i));
      // Distinct ages, oldest first (file systems with coarse mtimes would otherwise tie).
      utimesSync(from, 1_000_000 + i, 1_000_000 + i);
      await kept.keep('ci', name, from, { storePath: `/nix/store/${'a'.repeat(31)}${i}-p`, narHash: `sha256:${'0'.repeat(52)}`, narSize: 100, compression: 'none', fileSize: 100 });
    }
    const files = readdirSync(join(dir, 'files/ci')).filter((f) => !f.endsWith('.json')).sort();
    expect(files).toEqual(names.slice(3).sort());
    for (const [i, name] of names.entries()) {
      const found = await kept.find('ci', name);
      expect({ i, record: found?.record.fileSize, file: found?.path !== undefined }).toEqual({ i, record: 100, file: i >= 3 });
    }
  });

  it('keeps arriving together (a batch) share one scan of the kept files, not one each', async () => {
    let scans = 0;
    const kept = createKeptFiles({ dir: join(dir, 'many'), maxBytes: 1_000_000, onScan: () => scans++ });
    const keepOne = (i: number) => {
      const from = join(dir, `many-upload-${i}`);
      writeFileSync(from, Buffer.alloc(10, i));
      return kept.keep('ci', `${String(i).padStart(52, '0')}.nar`, from, { storePath: `/nix/store/${'b'.repeat(27)}${String(i).padStart(5, '0')}-p`, narHash: `sha256:${'1'.repeat(52)}`, narSize: 10, compression: 'none', fileSize: 10 });
    };
    await Promise.all(Array.from({ length: 200 }, (_, i) => keepOne(i)));
    expect(scans).toBe(1);
    expect(readdirSync(join(dir, 'many/files/ci')).filter((f) => !f.endsWith('.json'))).toHaveLength(200);
  });
});
