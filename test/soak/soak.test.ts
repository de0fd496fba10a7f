/**
 * The soak test, short (20 clients for 5 s through wrangler dev): no
 * unexpected answer, the origin's descriptors and SQLite handles back to
 * their baseline. `npm run soak` runs the long one (200 clients, 60 s).
 */
import { describe, expect, inject, it } from 'vitest';
import { join } from 'node:path';
import { addRandomFile, copyStore } from '../helpers/faults.ts';
import { useStack } from '../helpers/stack.ts';
import { formatReport, runSoak, soakProblems } from './soak.ts';

const fixture = inject('fixture');

describe.skipIf(!fixture)('soak, short', () => {
  let paths: string[];
  const s = useStack(() => ({
    root(dir) {
      const root = copyStore(fixture!.root, join(dir, 'root'));
      paths = [...fixture!.closure, addRandomFile(root, dir, 'soak-small.bin', 256 * 1024), addRandomFile(root, dir, 'soak-large.bin', 4 * 1024 * 1024)];
      return root;
    },
  }));

  it('20 clients for 5 s, mixed narinfo hits/misses and NARs: no unexpected answer, descriptors back to baseline', async () => {
    const report = await runSoak(s, { clients: 20, seconds: 5, paths });
    console.log(formatReport(report));
    expect(report.unexpected).toEqual({ count: 0, examples: [] });
    expect(report.requests).toBeGreaterThan(100);
    expect(Object.keys(report.byStatus).sort()).toEqual(['200', '404']);
    expect(soakProblems(report)).toEqual([]);
  });
});
