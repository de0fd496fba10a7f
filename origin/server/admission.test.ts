/** Admission control in-process: NAR streams and requests in progress past their limits get 503 + Retry-After. */
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../test/helpers/memory-store.ts';
import { inProcessOrigin } from '../../test/helpers/origin.ts';

describe('admission control', () => {
  const store = createMemoryStore([{ name: 'big', contents: Buffer.alloc(3 * 1024 * 1024, 7) }]);
  const p = store.paths.big!;
  const url = `/nar/${p.hashPart}-${p.narHash.slice(7)}.nar`;

  it('refuses a NAR past max_nar_streams with 503 + Retry-After, counts it, and admits again once a stream ends', async () => {
    const origin = inProcessOrigin(store, { maxNarStreams: 2 });
    const first = await origin.get(url);
    const second = await origin.get(url);
    expect([first.status, second.status]).toEqual([200, 200]);
    const refused = await origin.get(url);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('cache-control')).toBe('private, no-store');
    expect(await refused.text()).toMatch(/^origin busy: .*\n$/);
    // HEAD sends no body and is not held back; the narinfo route is not a NAR stream.
    expect((await origin.get(url, { method: 'HEAD' })).status).toBe(200);
    expect((await origin.get(`/${p.hashPart}.narinfo`)).status).toBe(200);
    const metrics = await (await origin.get('/metrics')).text();
    expect(metrics).toContain('eris_refused_total{reason="nar_streams"} 1');
    expect(metrics).toMatch(/^eris_nar_streams 2$/m);
    expect(Buffer.from(await first.arrayBuffer()).equals(p.nar)).toBe(true);
    await second.body!.cancel();
    const again = await origin.get(url);
    expect(again.status).toBe(200);
    expect(Buffer.from(await again.arrayBuffer()).equals(p.nar)).toBe(true);
    expect(await (await origin.get('/metrics')).text()).toMatch(/^eris_nar_streams 0$/m);
  });

  it('refuses requests past max_pending_requests while others are being handled, but never /metrics', async () => {
    const slow = createMemoryStore([{ name: 'x', contents: 'x' }]);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const lookup = slow.lookup.bind(slow);
    slow.lookup = async (h) => (await gate, lookup(h));
    const origin = inProcessOrigin(slow, { maxPendingRequests: 1 });
    const waiting = origin.get(`/${slow.paths.x!.hashPart}.narinfo`);
    await new Promise((r) => setTimeout(r, 10));
    const refused = await origin.get(`/${slow.paths.x!.hashPart}.narinfo`);
    expect({ status: refused.status, retryAfter: refused.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: '1' });
    expect(await (await origin.get('/metrics')).text()).toContain('eris_refused_total{reason="pending_requests"} 1');
    open();
    expect((await waiting).status).toBe(200);
    expect((await origin.get(`/${slow.paths.x!.hashPart}.narinfo`)).status).toBe(200);
  });
});
