/** How eris push cuts a closure into batches and paths on their own. */
import { describe, expect, it } from 'vitest';
import { planUnits } from './batch.ts';
import type { LocalPath } from './closure.ts';
import { MAX_BATCH_NAR_BYTES } from '../../../shared/push-protocol.ts';

const p = (name: string, narSize: number): LocalPath => ({ path: `/nix/store/${'a'.repeat(32)}-${name}`, narHash: '', narSize, references: [], signatures: [] });
const shape = (units: ReturnType<typeof planUnits>) => units.map((u) => (u.kind === 'single' ? u.path.path.slice(44) : u.paths.map((x) => x.path.slice(44)).join(',')));

describe('planUnits', () => {
  const narinfoBytes = () => 92;
  it('consecutive small paths share a batch up to the path count and the byte budget; a large path goes alone and ends the run', () => {
    const todo = [p('a', 100), p('b', 100), p('c', 100), p('big', MAX_BATCH_NAR_BYTES + 1), p('d', 100), p('e', 300)];
    expect(shape(planUnits(todo, { maxBytes: 1e6, maxPaths: 2, narinfoBytes }))).toEqual(['a,b', 'c', 'big', 'd,e']);
    // 13 bytes of magic, 8 + 92 + size per entry: a budget of 413 holds a+b (400) but not e after d.
    expect(shape(planUnits(todo, { maxBytes: 413, maxPaths: 100, narinfoBytes }))).toEqual(['a,b', 'c', 'big', 'd', 'e']);
    // A path that alone does not fit the budget goes on its own.
    expect(shape(planUnits([p('a', 100), p('f', 500)], { maxBytes: 413, maxPaths: 100, narinfoBytes }))).toEqual(['a', 'f']);
    expect(shape(planUnits(todo.slice(0, 2), { maxBytes: 1e6, maxPaths: 0, narinfoBytes }))).toEqual(['a', 'b']);
  });
});
