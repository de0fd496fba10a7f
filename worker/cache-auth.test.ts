/** Caches at the edge: tokens granted per cache, the same 401 for a cache not granted, /v1/caches, per-cache landing pages. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit } from './test-kit.ts';
import { requestedCache, isNarPath } from './cache-routing.ts';
import type { ClientCache } from '../shared/client-config.ts';

const LIST = {
  caches: [
    { name: 'default', priority: 30, publicKeys: ['default-1:' + 'A'.repeat(43) + '='], default: true },
    { name: 'team-a', priority: 10, publicKeys: ['team-a-1:' + 'B'.repeat(43) + '='], default: false },
    { name: 'team-b', priority: 20, publicKeys: ['team-b-1:' + 'C'.repeat(43) + '='], default: false },
  ],
};

function kit(env: Record<string, string> = {}) {
  return edgeKit({
    env,
    tokens: {
      'tok-a': { user: 'alice', scopes: ['read'], caches: ['team-a'] },
      'tok-ab': { user: 'bob', scopes: ['read'], caches: ['team-a', 'team-b', 'default'] },
      'tok-old': { user: 'carol', scopes: ['read'] },
    },
    origin: async (req) => {
      const path = new URL(req.url).pathname;
      if (path === '/v1/caches') return Response.json(LIST);
      return new Response(`origin saw ${path}\n`, { status: 200 });
    },
  });
}

describe('per-cache tokens at the edge', () => {
  it('lets a token use exactly its caches; any other is the same 401 as a bad token, and the origin is never asked', async () => {
    const k = kit();
    const req = (path: string, auth: string) => k.app.request(path, { headers: { Authorization: auth } }, k.env);
    const bad = await req('/team-b/nix-cache-info', basic('alice', 'wrong'));
    const badBody = await bad.text();
    expect(bad.status).toBe(401);
    for (const path of ['/team-a/nix-cache-info', `/team-a/${'a'.repeat(32)}.narinfo`, '/team-a/nar/x.nar', '/team-a/log/x.drv', '/team-a', '/v1/version']) {
      k.seen.length = 0;
      const res = await req(path, basic('alice', 'tok-a'));
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect(k.seen.length).toBe(1);
    }
    for (const path of ['/team-b/nix-cache-info', `/team-b/${'a'.repeat(32)}.narinfo`, '/team-b/nar/x.nar', '/team-b/', '/team-b',
      '/nix-cache-info', `/${'a'.repeat(32)}.narinfo`, '/nar/x.nar', '/default/nix-cache-info', '/no-such-cache/nix-cache-info']) {
      k.seen.length = 0;
      const res = await req(path, basic('alice', 'tok-a'));
      expect({ path, status: res.status, body: await res.text(), www: res.headers.get('www-authenticate') })
        .toEqual({ path, status: 401, body: badBody, www: bad.headers.get('www-authenticate') });
      expect(k.seen).toEqual([]);
    }
    expect(k.logs.some((l) => l.auth === 'token not granted cache team-b')).toBe(true);
  });

  it('keeps tokens without a cache list on the default cache (DEFAULT_CACHE names it)', async () => {
    const k = kit();
    const req = (path: string) => k.app.request(path, { headers: { Authorization: basic('carol', 'tok-old') } }, k.env);
    expect((await req('/nix-cache-info')).status).toBe(200);
    expect((await req('/default/nix-cache-info')).status).toBe(200);
    expect((await req('/team-a/nix-cache-info')).status).toBe(401);
    const other = kit({ DEFAULT_CACHE: 'team-a' });
    const req2 = (path: string, t: string, u: string) => other.app.request(path, { headers: { Authorization: basic(u, t) } }, other.env);
    expect((await req2('/nix-cache-info', 'tok-old', 'carol')).status).toBe(200);
    expect((await req2('/team-a/nix-cache-info', 'tok-old', 'carol')).status).toBe(200);
    expect((await req2('/default/nix-cache-info', 'tok-old', 'carol')).status).toBe(401);
    expect((await req2('/nix-cache-info', 'tok-a', 'alice')).status).toBe(200);
  });

  it('lets anonymous reads (ALLOW_ANONYMOUS) reach the default cache only', async () => {
    const k = kit({ ALLOW_ANONYMOUS: 'true' });
    expect((await k.app.request('/nix-cache-info', {}, k.env)).status).toBe(200);
    expect((await k.app.request('/team-a/nix-cache-info', {}, k.env)).status).toBe(401);
  });

  it('lists the caches a token may use, with their substituter URLs', async () => {
    const k = kit();
    const list = async (auth: string) => (await k.app.request('http://cache.example.org/v1/caches', { headers: { Authorization: auth } }, k.env)).json<{ caches: ClientCache[] }>();
    expect(await list(basic('alice', 'tok-a'))).toEqual({ caches: [{ ...LIST.caches[1], url: 'http://cache.example.org/team-a' }] });
    expect((await list(basic('bob', 'tok-ab'))).caches.map((c) => c.name)).toEqual(['default', 'team-a', 'team-b']);
    expect(await list(basic('carol', 'tok-old'))).toEqual({ caches: [{ ...LIST.caches[0], url: 'http://cache.example.org/default' }] });
  });

  it('shows a per-cache landing page with that cache\'s key and substituter URL', async () => {
    const k = kit();
    const res = await k.app.request('http://cache.example.org/team-a/', { headers: { Authorization: basic('alice', 'tok-a') } }, k.env);
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('extra-substituters = http://cache.example.org/team-a\n');
    expect(page).toContain(LIST.caches[1]!.publicKeys[0]);
    expect(page).not.toContain(LIST.caches[2]!.publicKeys[0]);
    // The bare landing page stays public; a cache's needs its grant.
    expect((await k.app.request('http://cache.example.org/', {}, k.env)).status).not.toBe(401);
    expect((await k.app.request('http://cache.example.org/team-a', {}, k.env)).status).toBe(401);
    expect((await k.app.request('http://cache.example.org/team-b/', { headers: { Authorization: basic('alice', 'tok-a') } }, k.env)).status).toBe(401);
  });

  it('reads the cache of a path as the origin does', () => {
    expect(requestedCache('/team-a/nar/x.nar', 'd')).toBe('team-a');
    expect(requestedCache('/nar/x.nar', 'd')).toBe('d');
    expect(requestedCache(`/${'a'.repeat(32)}.narinfo`, 'd')).toBe('d');
    expect(requestedCache('/nix-cache-info', 'd')).toBe('d');
    expect(requestedCache('/v1/caches', 'd')).toBeUndefined();
    expect(requestedCache('/health', 'd')).toBeUndefined();
    expect(requestedCache('/', 'd')).toBeUndefined();
    expect(isNarPath('/team-a/nar/x.nar')).toBe(true);
    expect(isNarPath('/nar/x.nar')).toBe(true);
    expect(isNarPath('/team-a/x.narinfo')).toBe(false);
  });
});
