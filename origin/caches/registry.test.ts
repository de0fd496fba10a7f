/** A cache's view of the store (scopedStore): paths outside its published set do not exist, on every lookup. */
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../test/helpers/memory-store.ts';
import { StoreBusyError } from '../store/db.ts';
import { scopedStore } from './registry.ts';
import type { PublishedSet } from './published.ts';

describe('scopedStore', () => {
  const store = createMemoryStore([{ name: 'in' }, { name: 'out' }]);
  const [inside, outside] = [store.paths.in!.hashPart, store.paths.out!.hashPart];
  const scoped = scopedStore(store, (h) => h === inside, () => ({}) as PublishedSet);

  it('answers lookups (waiting or not) only for published paths', async () => {
    expect((await scoped.lookup(inside))?.storePath).toBe(store.paths.in!.storePath);
    expect(await scoped.lookup(outside)).toBeUndefined();
    expect(scoped.lookupNow(inside)?.storePath).toBe(store.paths.in!.storePath);
    expect(scoped.lookupNow(outside)).toBeUndefined();
  });

  it('throws as the store does on a busy DB or a malformed hash, published or not', () => {
    store.busy = true;
    try {
      expect(() => scoped.lookupNow(inside)).toThrow(StoreBusyError);
      expect(() => scoped.lookupNow(outside)).toThrow(StoreBusyError);
    } finally {
      store.busy = false;
    }
    expect(() => scoped.lookupNow('not-a-hash')).toThrow(/invalid store path hash/);
  });
});
