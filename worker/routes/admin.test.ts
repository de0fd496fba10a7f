/** The operator's page at the edge, through the edge app with an origin standing in (the browser test loads it through wrangler dev). */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit, TEST_SECRET } from '../test-kit.ts';
import { ADMIN_DATA_PATH, lastDays, type AdminData } from '../../shared/admin.ts';
import { EDGE_SECRET_HEADER } from '../../shared/contract.ts';

const tokens = {
  'tok-admin': { user: 'root', scopes: ['admin' as const] },
  'tok-read': { user: 'alice', scopes: ['read' as const] },
  'tok-write': { user: 'ci', scopes: ['write' as const] },
};

const zero = { narinfoHits: 0, narinfoMisses: 0, nars: 0, narBytesSent: 0, pushes: 0, bytesReceived: 0 };

function figures(): AdminData {
  const days = lastDays(Date.parse('2026-12-04T12:00:00Z'));
  const series = (name: string) => ({ name, days: days.map((_, i) => ({ ...zero, narBytesSent: i * 1000, narinfoHits: i })), totals: { ...zero, narBytesSent: 435_000, narinfoHits: 435 } });
  const push = { at: '2026-12-04T10:00:00.000Z', cache: 'main', user: '<b>ci</b>', token: '0123456789ab', storePath: '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-<img src=x>', narSize: 4096 };
  return {
    generated: '2026-12-04T12:00:00.000Z',
    days,
    caches: [{ name: 'main', default: true, paths: 12, bytes: 123456, roots: 2, lastPush: push }],
    usageByCache: [series('main')],
    usageByUser: [series('<script>alert(1)</script>')],
    usageByToken: [{ ...series('0123456789ab'), user: 'ci' }],
    topPaths: [{ path: '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello', nars: 3, bytes: 9999 }],
    recentPushes: [push],
  };
}

function kit(answer: (path: string) => Response = (path) => (path === ADMIN_DATA_PATH ? Response.json(figures()) : new Response('ok\n'))) {
  return edgeKit({ tokens, origin: async (req) => answer(new URL(req.url).pathname) });
}

describe('GET /v1/admin', () => {
  it('shows an admin token the caches, charts and pushes, escaped, and asks the origin with the edge secret', async () => {
    const { app, seen } = kit();
    const res = await app.request('/v1/admin', { headers: { Authorization: basic('root', 'tok-admin') } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const page = await res.text();
    expect(page).toContain('data-cache="main"');
    // 30 days × 2 series × 2 charts per series, for the cache and the user.
    expect(page.match(/<rect [^>]*data-day=/g)).toHaveLength(30 * 2 * 2 * 2);
    expect(page).toContain(`data-day="${figures().days[29]}" data-series="narBytesSent" data-value="29000"`);
    expect(page).not.toContain('<script>');
    expect(page).not.toContain('<img');
    expect(page).not.toContain('<b>ci');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).not.toContain('tok-admin');
    expect(page).not.toContain(TEST_SECRET);
    expect(seen.map((r) => new URL(r.url).pathname).sort()).toEqual(['/health', ADMIN_DATA_PATH]);
    for (const r of seen) expect(r.headers.get(EDGE_SECRET_HEADER)).toBe(TEST_SECRET);
  });

  it('gives a read or write token the same 401 as a bad token, without asking the origin', async () => {
    const { app, seen } = kit();
    const bad = await app.request('/v1/admin', { headers: { Authorization: basic('root', 'tok-nope') } });
    expect(bad.status).toBe(401);
    const badBody = await bad.text();
    for (const [user, token] of [['alice', 'tok-read'], ['ci', 'tok-write']] as const) {
      for (const path of ['/v1/admin', ADMIN_DATA_PATH]) {
        const res = await app.request(path, { headers: { Authorization: basic(user, token) } });
        expect(res.status).toBe(401);
        expect(await res.text()).toBe(badBody);
        expect(res.headers.get('www-authenticate')).toBe(bad.headers.get('www-authenticate'));
      }
    }
    expect((await app.request('/v1/admin')).status).toBe(401);
    expect(seen).toHaveLength(0);
  });

  it('the admin scope reads nothing else', async () => {
    const { app, seen } = kit();
    for (const path of ['/nix-cache-info', '/abc.narinfo', '/v1/caches']) {
      expect((await app.request(path, { headers: { Authorization: basic('root', 'tok-admin') } })).status).toBe(401);
    }
    expect(seen).toHaveLength(0);
  });

  it('serves the figures as JSON with each origin’s health, and 404 for other paths under /v1/admin/', async () => {
    const { app } = kit();
    const res = await app.request(ADMIN_DATA_PATH, { headers: { Authorization: basic('root', 'tok-admin') } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as AdminData & { origins: { id: string; breaker: string; health: string }[] };
    expect(body.caches[0]!.name).toBe('main');
    expect(body.origins).toMatchObject([{ id: 'origin', breaker: 'closed', health: 'ok' }]);
    expect((await app.request('/v1/admin/other', { headers: { Authorization: basic('root', 'tok-admin') } })).status).toBe(404);
  });

  it('still renders, says why and answers 503 when the origin gives no figures', async () => {
    const { app } = kit(() => new Response('down', { status: 500 }));
    const res = await app.request('/v1/admin', { headers: { Authorization: basic('root', 'tok-admin') } });
    expect(res.status).toBe(503);
    const page = await res.text();
    expect(page).toContain('id="problem"');
    expect(page).toContain('HTTP 500');
  });
});
