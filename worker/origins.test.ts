/**
 * Several origins behind one edge (issue 13), through the edge app with the
 * origins stood in for by functions keyed on the host asked. The same with
 * real `eris serve` processes, real Nix and wrangler dev is
 * test/e2e/multi-origin.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit, hang, manualClock, TEST_SECRET } from './test-kit.ts';
import { parseEdgeConfig } from './config.ts';
import { routeNarUrl } from './origins.ts';
import type { Env } from './env.ts';
import type { CacheConfig, ClientCache } from '../shared/client-config.ts';
import type { CacheDisagreement } from './origin-keys.ts';

const tokens = {
  'tok-alice': { user: 'alice', scopes: ['read' as const] },
  'tok-carol': { user: 'carol', scopes: ['write' as const] },
  'tok-bob': { user: 'bob', scopes: ['read' as const], caches: ['default', 'team'] },
};
const auth = { Authorization: basic('alice', 'tok-alice') };
const SECRET_B = 'edge-secret-of-box-b-0123456789';
const ORIGINS = JSON.stringify([
  { id: 'a', url: 'http://a.test' },
  { id: 'b', url: 'http://b.test', secret: 'EDGE_SECRET_B' },
  { id: 'c', url: 'http://c.test/eris' },
]);
const HASH = '0123456789abcdfghijklmnpqrsvwxyz';
const NARHASH = '1'.repeat(52);
const narinfo = (url = `nar/${HASH}-${NARHASH}.nar`) => `StorePath: /nix/store/${HASH}-x\nURL: ${url}\nCompression: none\nNarHash: sha256:${NARHASH}\nNarSize: 8\nReferences: \nSig: k-1:AAAA\n`;

type Handler = (req: Request) => Promise<Response>;
const notFound: Handler = async () => new Response('not found\n', { status: 404 });
const ok = (body: string): Handler => async () => new Response(body, { headers: { 'content-type': 'text/x-nix-narinfo', 'content-length': String(body.length) } });
const down: Handler = async () => {
  throw new TypeError('connect ECONNREFUSED');
};

function multi(handlers: Record<string, Handler>, env: Partial<Env> = {}, now?: () => number) {
  const asked: string[] = [];
  const kit = edgeKit({
    env: { ORIGINS, EDGE_SECRET_B: SECRET_B, ...env } as Partial<Env>,
    tokens,
    now,
    origin: (req) => {
      const host = new URL(req.url).hostname.split('.')[0]!;
      asked.push(host);
      return (handlers[host] ?? notFound)(req);
    },
  });
  const get = (path: string, init: RequestInit = {}) => kit.app.request(path, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } });
  return { ...kit, asked, get };
}

describe('metadata from several origins', () => {
  it('asks in priority order and answers with the first 200, its NAR URL naming the origin that answered', async () => {
    const m = multi({ a: notFound, b: ok(narinfo()), c: ok(narinfo()) });
    const res = await m.get(`/${HASH}.narinfo`);
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toBe(narinfo(`nar/${HASH}-${NARHASH}.nar?eris-origin=b`));
    expect(res.headers.get('content-length')).toBe(String(body.length));
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(m.asked).toEqual(['a', 'b']);
    // Each origin gets its own secret.
    expect(m.seen.map((r) => r.headers.get('x-eris-edge-secret'))).toEqual([TEST_SECRET, SECRET_B]);
    expect(m.logs.at(-1)).toMatchObject({ path: `/${HASH}.narinfo`, status: 200, origin: 'b', asked: 2, tries: [{ origin: 'a', result: 404 }, { origin: 'b', result: 200 }] });
  });

  it('answers 404 only when every origin said 404', async () => {
    const m = multi({});
    const res = await m.get(`/${HASH}.narinfo`);
    expect(res.status).toBe(404);
    await res.text(); // the request log's line is written when the body has left
    expect(m.asked).toEqual(['a', 'b', 'c']);
    expect(m.logs.at(-1)).toMatchObject({ status: 404, origin: 'a', asked: 3 });
  });

  it('never answers 404 while an origin that may have the path failed', async () => {
    // The one origin that has it answers 500: the edge passes that on.
    expect((await multi({ b: async () => new Response('broken\n', { status: 500 }) }).get(`/${HASH}.narinfo`)).status).toBe(500);
    // Unreachable, or over its budget: 502 / 504, as with one origin.
    expect((await multi({ c: down }).get(`/${HASH}.narinfo`)).status).toBe(502);
    const slow = await multi({ a: hang }, { ORIGIN_TIMEOUT_MS: '200', HEDGE_MS: '0' }).get(`/${HASH}.narinfo`);
    expect(slow.status).toBe(504);
    // Two failed: 503 + Retry-After, naming them.
    const two = await multi({ a: down, c: async () => new Response('busy', { status: 503 }) }).get(`/${HASH}.narinfo`);
    expect(two.status).toBe(503);
    expect(two.headers.get('retry-after')).toBe('5');
    expect(await two.text()).toBe('no origin could answer (a: unreachable, c: 503)\n');
  });

  it('a hung origin costs the hedge delay, not its budget, and its breaker opens after a few', async () => {
    const m = multi({ a: hang, b: ok(narinfo()) }, { HEDGE_MS: '100', ORIGIN_TIMEOUT_MS: '5000', BREAKER_THRESHOLD: '2' });
    const started = Date.now();
    expect((await m.get(`/${HASH}.narinfo`)).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('answers 503 at once, asking nobody, when every origin is dark, and uses an origin again after its cool-down', async () => {
    const clock = manualClock();
    let up = false;
    const flaky: Handler = (req) => (up ? ok(narinfo())(req) : down(req));
    const m = multi({ a: down, b: flaky, c: down }, { BREAKER_THRESHOLD: '2', BREAKER_COOLDOWN_MS: '4000' }, clock.now);
    for (let i = 0; i < 2; i++) expect((await m.get(`/${HASH}.narinfo`)).status).toBe(503);
    const before = m.asked.length;
    const dark = await m.get(`/${HASH}.narinfo`);
    expect(dark.status).toBe(503);
    expect(dark.headers.get('retry-after')).toBe('4');
    expect(await dark.text()).toBe('origins unavailable, retry in 4 s\n');
    expect(m.asked.length).toBe(before);
    up = true;
    clock.advance(4000);
    const back = await m.get(`/${HASH}.narinfo`);
    expect(back.status).toBe(200);
    expect(await back.text()).toContain('?eris-origin=b');
    expect(m.asked.slice(before)).toEqual(['a', 'b']); // a's trial failed, b's succeeded
  });
});

describe('NARs from several origins', () => {
  const nar = `/nar/${HASH}-${NARHASH}.nar`;
  const narBytes: Handler = async (req) => new Response(req.headers.get('range') ? 'ar' : 'narbytes', { status: req.headers.get('range') ? 206 : 200, headers: { 'content-type': 'application/x-nix-nar' } });

  it('go to the origin the narinfo named, without the routing parameter', async () => {
    const m = multi({ a: narBytes, b: narBytes, c: narBytes });
    const res = await m.get(`${nar}?eris-origin=c`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('narbytes');
    expect(m.asked).toEqual(['c']);
    expect(m.seen[0]!.url).toBe(`http://c.test/eris${nar}`);
  });

  it('fall back to the others in priority order when that origin is down or lacks it, Range included', async () => {
    const m = multi({ a: notFound, b: down, c: narBytes });
    const res = await m.get(`${nar}?eris-origin=b`, { headers: { Range: 'bytes=1-2' } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe('ar');
    expect(m.asked).toEqual(['b', 'a', 'c']);
    expect(m.seen.every((r) => r.headers.get('range') === 'bytes=1-2')).toBe(true);
    expect(m.logs.at(-1)).toMatchObject({ origin: 'c', asked: 3, tries: [{ origin: 'b', result: 'unreachable' }, { origin: 'a', result: 404 }, { origin: 'c', result: 206 }] });
  });

  it('are never asked of two origins at once, and an unknown origin name is ignored', async () => {
    const m = multi({ a: hang, b: narBytes }, { HEDGE_MS: '100', NAR_TIMEOUT_MS: '300' });
    const res = await m.get(`${nar}?eris-origin=nonesuch`);
    expect(res.status).toBe(200);
    expect(m.asked).toEqual(['a', 'b']); // b only after a's budget, not after the hedge delay
  });
});

describe('uploads with several origins', () => {
  it('go to the first origin only, once, and its answer is passed on as it is', async () => {
    const m = multi({ a: ok('URL: nar/x.nar\n'), b: ok('never asked') });
    const res = await m.get(`/${HASH}.narinfo`, { method: 'PUT', body: narinfo(), headers: { Authorization: basic('carol', 'tok-carol'), 'content-type': 'text/x-nix-narinfo', 'content-length': String(narinfo().length) } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('URL: nar/x.nar\n');
    expect(m.asked).toEqual(['a']);
    expect(m.seen[0]!.method).toBe('PUT');
  });
});

describe('keys and configuration', () => {
  const key = (n: number) => `box-${n}:` + Buffer.alloc(32, n).toString('base64');

  /** A box answering /v1/public-key with its default cache's keys and /v1/caches with these caches. */
  const box = (caches: { name: string; priority: number; keys: number[]; default?: boolean }[]): Handler => async (req) => {
    const path = new URL(req.url).pathname.replace(/^\/eris/, '');
    const listed = caches.map((c) => ({ name: c.name, priority: c.priority, publicKeys: c.keys.map(key), default: c.default ?? c.name === 'default' }));
    if (path === '/v1/public-key') return new Response(listed.find((c) => c.default)!.publicKeys.join('\n') + '\n');
    if (path === '/v1/caches') return Response.json({ caches: listed });
    return notFound(req);
  };
  const alice = (path: string, m: ReturnType<typeof multi>) => m.app.request(`https://cache.example.org${path}`, { headers: auth });

  it('every key listing merges every origin\'s keys, deduplicated, in priority order: /v1/public-key, /v1/caches, /v1/cache-config, the landing pages', async () => {
    const m = multi({
      a: box([{ name: 'default', priority: 30, keys: [1] }]),
      b: box([{ name: 'default', priority: 30, keys: [2, 1] }]),
      c: box([{ name: 'default', priority: 30, keys: [3] }]),
    });
    const all = [key(1), key(2), key(3)];
    expect(await (await m.app.request('/v1/public-key')).text()).toBe(all.join('\n') + '\n');
    const list = await (await alice('/v1/caches', m)).json();
    expect(list).toEqual({ caches: [{ name: 'default', priority: 30, publicKeys: all, default: true, url: 'https://cache.example.org/default' }] });
    const cfg = await (await alice('/v1/cache-config', m)).json<CacheConfig>();
    expect(cfg.caches[0]?.publicKeys).toEqual(all);
    expect(cfg.nixConf).toContain(`extra-trusted-public-keys = ${all.join(' ')}\n`);
    for (const page of ['/', '/default/']) {
      const res = await alice(page, m);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain(`trusted-public-keys = ${all.join(' ')}\n`);
    }
  });

  it('merges cache lists by name: priority and default from the first origin listing it, keys from all; disagreements named', async () => {
    const m = multi({
      a: box([{ name: 'default', priority: 30, keys: [1] }]),
      b: box([{ name: 'default', priority: 40, keys: [2] }, { name: 'team', priority: 10, keys: [4] }]),
      c: box([{ name: 'team', priority: 10, keys: [5], default: true }, { name: 'default', priority: 30, keys: [3], default: false }]),
    });
    const res = await m.app.request('https://cache.example.org/v1/caches', { headers: { Authorization: basic('bob', 'tok-bob') } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      caches: [
        { name: 'default', priority: 30, publicKeys: [key(1), key(2), key(3)], default: true, url: 'https://cache.example.org/default' },
        { name: 'team', priority: 10, publicKeys: [key(4), key(5)], default: false, url: 'https://cache.example.org/team' },
      ],
      disagreements: [
        { cache: 'default', field: 'priority', values: { a: 30, b: 40, c: 30 } },
        { cache: 'default', field: 'default', values: { a: true, b: true, c: false } },
        { cache: 'team', field: 'default', values: { b: false, c: true } },
      ],
    });
    // alice's token has no cache list: the default cache only, and only its disagreements.
    const own = await (await alice('/v1/caches', m)).json<{ caches: ClientCache[]; disagreements: CacheDisagreement[] }>();
    expect(own.caches.map((c) => c.name)).toEqual(['default']);
    expect(own.disagreements.map((d) => d.cache)).toEqual(['default', 'default']);
    // A cache's landing page: its keys from every origin that lists it.
    const page = await (await m.app.request('https://cache.example.org/team/', { headers: { Authorization: basic('bob', 'tok-bob') } })).text();
    expect(page).toContain(`trusted-public-keys = ${key(4)} ${key(5)}\n`);
  });

  it('when an origin did not answer, every key listing is a 503 with Retry-After naming it, never a complete-looking 200', async () => {
    const good = box([{ name: 'default', priority: 30, keys: [1] }]);
    const failures: [string, Handler][] = [
      ['unreachable', down],
      ['status 500', async () => new Response('broken', { status: 500 })],
      ['unusable answer', async () => new Response('<html>not a key</html>')],
      ['refused the edge secret (403)', async () => new Response('no', { status: 403 })],
    ];
    for (const [why, failing] of failures) {
      const m = multi({ a: good, b: failing, c: box([{ name: 'default', priority: 30, keys: [3] }]) });
      for (const path of ['/v1/public-key', '/v1/caches', '/v1/cache-config', '/', '/default/']) {
        const res = await alice(path, m);
        const body = await res.text();
        expect({ why, path, status: res.status, retry: res.headers.get('retry-after'), missing: res.headers.get('x-eris-missing-origins'), cc: res.headers.get('cache-control') })
          .toEqual({ why, path, status: 503, retry: '5', missing: 'b', cc: 'private, no-store' });
        if (path.startsWith('/v1/')) expect(body).toContain(`origin b (${why}) did not answer`);
        else expect(body).toContain('id="keys-incomplete"');
        // The keys it has are never handed out as a list to paste.
        if (path.startsWith('/v1/')) expect(body).not.toContain(key(1));
      }
    }
  });

  it('a hung origin costs at most the key budget, then the listing is a 503', async () => {
    const m = multi({ a: box([{ name: 'default', priority: 30, keys: [1] }]), b: hang, c: box([{ name: 'default', priority: 30, keys: [3] }]) }, { ORIGIN_TIMEOUT_MS: '300' });
    const t = Date.now();
    const res = await alice('/v1/caches', m);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('origin b (no answer in 300 ms)');
    expect(Date.now() - t).toBeLessThan(3000);
  });

  it('leaves a single ORIGIN_URL as it was: no routing parameter, nothing else asked', async () => {
    const kit = edgeKit({ tokens, origin: ok(narinfo()) });
    const res = await kit.app.request(`/${HASH}.narinfo`, { headers: auth });
    expect(await res.text()).toBe(narinfo());
    expect(kit.deps.config.origins).toEqual([{ id: 'origin', url: 'http://origin.test', binding: undefined, edgeSecret: TEST_SECRET }]);
  });

  it('refuses bad ORIGINS with one line naming the entry', () => {
    const env = (origins: unknown, extra: Record<string, unknown> = {}) => ({ EDGE_SECRET: TEST_SECRET, ORIGINS: origins, ...extra }) as unknown as Env;
    const cases: [unknown, RegExp, Record<string, unknown>?][] = [
      ['[', /ORIGINS must be a JSON array/],
      ['[]', /non-empty array/],
      ['[{"id":"a"}]', /ORIGINS\[0\]\.url is not set to an http\(s\) URL/],
      ['[{"id":"A","url":"http://a"}]', /ORIGINS\[0\]\.id must be/],
      ['[{"id":"a","url":"http://a"},{"id":"a","url":"http://b"}]', /ORIGINS\[1\]\.id: "a" is used twice/],
      ['[{"id":"a","url":"ftp://a"}]', /ORIGINS\[0\]\.url must be http\(s\)/],
      ['[{"id":"a","url":"http://a","secret":"NOPE"}]', /ORIGINS\[0\]\.secret: NOPE is missing/],
      ['[{"id":"a","url":"http://a","binding":"VPC_A"}]', /ORIGINS\[0\]\.binding: no service binding named VPC_A/],
      ['[{"id":"a","url":"http://a","weight":2}]', /ORIGINS\[0\]\.weight: unknown key/],
    ];
    for (const [origins, re, extra] of cases) expect(() => parseEdgeConfig(env(origins, extra))).toThrow(re);
    // A TOML array under [vars] arrives parsed; a bound VPC service is taken.
    const vpc = { fetch: async () => new Response('') };
    expect(parseEdgeConfig(env([{ id: 'a', url: 'http://a', binding: 'VPC_A' }], { VPC_A: vpc })).origins[0]).toMatchObject({ id: 'a', binding: 'VPC_A' });
  });

  it('rewrites only the URL line of a narinfo', () => {
    expect(routeNarUrl('URL: nar/x.nar\nNarHash: sha256:URL: y\n', 'b')).toBe('URL: nar/x.nar?eris-origin=b\nNarHash: sha256:URL: y\n');
    expect(routeNarUrl('URL: nar/x.nar?a=1\n', 'c')).toBe('URL: nar/x.nar?a=1&eris-origin=c\n');
  });
});
