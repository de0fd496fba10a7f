/** Path sanity in the edge app: refused before authentication, the rate limit or the origin see the request. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit } from '../../test-kit.ts';
import { suspiciousPath } from './index.ts';

const tokens = { 'tok-alice': { user: 'alice', scopes: ['read' as const] } };
const auth = { Authorization: basic('alice', 'tok-alice') };

describe('path sanity', () => {
  it('rejects paths whose raw form hides dots or slashes with 400, before any lookup', async () => {
    const { app, seen } = edgeKit({ tokens });
    for (const p of ['/nar/..%2F..%2Fetc%2Fpasswd', '/nar/x%2e%2e%2Fy', '/a//b', '/nar/x%00.nar', '/nar/a%5cb']) {
      const res = await app.request('http://edge.test' + p, { headers: auth });
      expect({ p, status: res.status, body: await res.text() }).toEqual({ p, status: 400, body: 'malformed path\n' });
      expect(res.headers.get('cache-control')).toBe('private, no-store');
    }
    // Even without credentials: 400, not 401.
    expect((await app.request('http://edge.test/a//b')).status).toBe(400);
    expect(seen).toHaveLength(0);
  });

  it('rejects an overlong path, and lets well-formed ones (dots inside names, queries) through', async () => {
    const { app, seen } = edgeKit({ tokens });
    expect((await app.request('http://edge.test/' + 'a'.repeat(1100), { headers: auth })).status).toBe(400);
    for (const p of ['/nix-cache-info', '/abc.narinfo?x=%2f', '/nar/x.nar.xz', '/log/abc-foo-1.0.drv']) {
      expect({ p, status: (await app.request('http://edge.test' + p, { headers: auth })).status }).toEqual({ p, status: 200 });
    }
    expect(seen).toHaveLength(4);
  });

  it('passes names with every character Nix allows on to the origin as Nix sent them (a ? starts the query)', async () => {
    const { app, seen } = edgeKit({ tokens });
    const h = 'w2p52lymhld18si6y0h50c7vkz8zp1np';
    const paths = [`/log/${h}-a+b-c.d_e?f=g.drv`, `/log/${h}`, `/realisations/sha256:${'a'.repeat(64)}!a+b-c.d_e?f=g.doi`, `/log/${h}-x?y?z=w.drv`];
    for (const p of paths) expect({ p, status: (await app.request('http://edge.test' + p, { headers: auth })).status }).toEqual({ p, status: 200 });
    expect(seen.map((r) => { const u = new URL(r.url); return u.pathname + u.search; })).toEqual(paths);
  });

  it('judges the raw URL only up to the query', () => {
    expect(suspiciousPath('http://h/a/b?c=//d')).toBeNull();
    expect(suspiciousPath('http://h/a/b#//d')).toBeNull();
    expect(suspiciousPath('http://h')).toBeNull();
    expect(suspiciousPath('http://h/a/%2E%2E/b')).toBe('malformed path');
    // URL parsing already folds these before the app sees them; the check still refuses them raw.
    for (const raw of ['http://h/nar/./x', 'http://h/nar/..', 'http://h/a\\b']) expect(suspiciousPath(raw)).toBe('malformed path');
  });
});
