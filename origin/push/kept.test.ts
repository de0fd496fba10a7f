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
});
