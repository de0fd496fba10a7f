/**
 * The isolate's token cache: hundreds of requests of one `nix copy` read KV
 * once per TOKEN_CACHE_SECONDS, and a revoked token is refused once that time
 * has passed (on top of KV's own ~60 s), never later.
 */
import { describe, expect, it } from 'vitest';
import { cachedTokenStore, type TokenStore } from './tokens.ts';
import { edgeKit, manualClock, basic } from './test-kit.ts';
import { tokenDigest, tokenKey, type TokenRecord } from '../shared/contract.ts';

const alice: TokenRecord = { user: 'alice', scopes: ['read'], created: '2026-01-01T00:00:00Z', expires: null };

/** A KV namespace whose keys can be deleted, counting reads. */
function mutableKv(entries: Map<string, string>) {
  const kv = { reads: 0, get: async (key: string) => (kv.reads++, entries.get(key) ?? null) };
  return kv;
}

describe('cachedTokenStore', () => {
  it('asks the store once per ttl per digest, hits and misses alike, and again once the ttl has passed', async () => {
    const clock = manualClock();
    let record: TokenRecord | null = alice;
    let reads = 0;
    const inner: TokenStore = { get: async () => (reads++, record) };
    const store = cachedTokenStore(inner, { ttlMs: 5000, now: clock.now });
    for (let i = 0; i < 100; i++) expect(await store.get('a')).toEqual(alice);
    expect(await store.get('b')).toEqual(alice);
    expect(reads).toBe(2);
    record = null; // revoked
    clock.advance(4999);
    expect(await store.get('a')).toEqual(alice);
    clock.advance(1);
    expect(await store.get('a')).toBeNull();
    expect(await store.get('a')).toBeNull();
    expect(reads).toBe(3);
  });

  it('keeps no failed lookup, and with ttl 0 reads every time', async () => {
    let fail = true;
    let reads = 0;
    const inner: TokenStore = { get: async () => { reads++; if (fail) throw new Error('KV down'); return alice; } };
    const store = cachedTokenStore(inner, { ttlMs: 5000 });
    await expect(store.get('a')).rejects.toThrow('KV down');
    fail = false;
    expect(await store.get('a')).toEqual(alice);
    expect(reads).toBe(2);
    const uncached = cachedTokenStore(inner, { ttlMs: 0 });
    await uncached.get('a');
    await uncached.get('a');
    expect(reads).toBe(4);
  });

  it('holds at most maxEntries digests', async () => {
    let reads = 0;
    const store = cachedTokenStore({ get: async () => (reads++, alice) }, { ttlMs: 60_000, maxEntries: 2 });
    for (const d of ['a', 'b', 'c', 'a']) await store.get(d);
    expect(reads).toBe(4); // 'a' was dropped when 'c' came
  });
});

describe('the edge with a token cache (TOKEN_CACHE_SECONDS)', () => {
  async function setup(seconds?: string) {
    const token = 'eris_' + 'x'.repeat(43);
    const entries = new Map([[tokenKey(await tokenDigest(token)), JSON.stringify(alice)]]);
    const kv = mutableKv(entries);
    const clock = manualClock();
    const kit = edgeKit({ env: { TOKENS: kv as unknown as KVNamespace, ...(seconds !== undefined ? { TOKEN_CACHE_SECONDS: seconds } : {}) }, now: clock.now });
    const get = () => kit.app.request('/nix-cache-info', { headers: { Authorization: basic('alice', token) } });
    return { kv, clock, get, revoke: () => entries.clear() };
  }

  it('reads KV once for many requests, and refuses a revoked token once the cache time (default 5 s) has passed', async () => {
    const { kv, clock, get, revoke } = await setup();
    for (let i = 0; i < 20; i++) expect((await get()).status).toBe(200);
    expect(kv.reads).toBe(1);
    revoke();
    clock.advance(4000);
    expect((await get()).status).toBe(200); // within the bound: still cached
    clock.advance(1000);
    expect((await get()).status).toBe(401);
    expect(kv.reads).toBe(2);
  });

  it('with TOKEN_CACHE_SECONDS=0 reads KV on every request and refuses a revoked token at once', async () => {
    const { kv, get, revoke } = await setup('0');
    for (let i = 0; i < 3; i++) expect((await get()).status).toBe(200);
    expect(kv.reads).toBe(3);
    revoke();
    expect((await get()).status).toBe(401);
  });

  it('refuses a TOKEN_CACHE_SECONDS that is not 0..60 whole seconds, naming it', () => {
    for (const bad of ['-1', '61', '1.5', 'soon']) {
      expect(() => edgeKit({ env: { TOKEN_CACHE_SECONDS: bad } })).toThrow(/^TOKEN_CACHE_SECONDS must be a whole number of seconds \(0\.\.60\)$/);
    }
  });
});
