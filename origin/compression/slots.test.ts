/** The compression cap's bookkeeping (the same table serves one process and the cluster primary). */
import { describe, expect, it } from 'vitest';
import { CompressionRefusedError, createLocalSlots, SlotTable } from './slots.ts';

describe('compression slots', () => {
  it('grants up to max at once, queues up to queueMax, refuses past that, and grants in arrival order as places free up', () => {
    const t = new SlotTable<string>(2, 2);
    const granted: string[] = [];
    const ask = (key: string) => t.request(key, 'w1', () => granted.push(key));
    expect([ask('a'), ask('b'), ask('c'), ask('d'), ask('e')]).toEqual(['granted', 'granted', 'queued', 'queued', 'refused']);
    expect([t.runningCount, t.queuedCount]).toEqual([2, 2]);
    t.release('a');
    expect(granted).toEqual(['a', 'b', 'c']);
    t.release('b');
    t.release('c');
    expect(granted).toEqual(['a', 'b', 'c', 'd']);
    expect([t.runningCount, t.queuedCount]).toEqual([1, 0]);
  });

  it('never runs one key twice at once: a second request for a running key waits even with places free', () => {
    const t = new SlotTable<string>(4, 4);
    const granted: string[] = [];
    expect(t.request('k', 'w1', () => granted.push('k@w1'))).toBe('granted');
    expect(t.request('k', 'w2', () => granted.push('k@w2'))).toBe('queued');
    expect(t.request('other', 'w2', () => granted.push('other'))).toBe('granted');
    expect(granted).toEqual(['k@w1', 'other']);
    t.release('k');
    expect(granted).toEqual(['k@w1', 'other', 'k@w2']);
  });

  it('forgets a dead owner: its queued requests are dropped and its places go to the next in line', () => {
    const t = new SlotTable<string>(1, 4);
    const granted: string[] = [];
    t.request('a', 'dead', () => granted.push('a'));
    t.request('b', 'dead', () => granted.push('b'));
    t.request('c', 'alive', () => granted.push('c'));
    t.forget('dead', ['a']);
    expect(granted).toEqual(['a', 'c']);
    expect([t.runningCount, t.queuedCount]).toEqual([1, 0]);
  });

  it('local slots: refusal rejects admitted, cancelling a queued request frees its place in the queue, release is idempotent', async () => {
    const s = createLocalSlots(1, 1);
    const first = s.request('a');
    await first.admitted;
    const release = await first.granted;
    const second = s.request('b');
    await second.admitted;
    await expect(s.request('c').admitted).rejects.toBeInstanceOf(CompressionRefusedError);
    second.cancel();
    const third = s.request('d');
    await third.admitted;
    release();
    release();
    await third.granted;
    expect([s.table.runningCount, s.table.queuedCount]).toEqual([1, 0]);
  });
});
