/**
 * Edge logic through Hono's app.request, with the origin injected as a
 * function (the same seam index.ts wires to fetch). The same behaviour is
 * checked in workerd by test/e2e/worker-runtime.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parseEdgeConfig } from './config.ts';
import { parseAuthorization } from './middleware/auth/index.ts';
import { basic, edgeKit, hang, TEST_SECRET as SECRET } from './test-kit.ts';
import type { Env } from './env.ts';

const tokens = {
  'tok-alice': { user: 'alice', scopes: ['read' as const] },
  'tok-expired': { user: 'bob', scopes: ['read' as const], expires: '2000-01-01T00:00:00Z' },
  'tok-writer': { user: 'carol', scopes: ['write' as const] },
  'tok-noscope': { user: 'dave', scopes: [] },
};

function setup(env: Partial<Env> = {}, origin?: (req: Request) => Promise<Response>) {
  return edgeKit({
    env,
    tokens,
    origin: origin ?? (async () => new Response('StoreDir: /nix/store\n', { status: 200, headers: { 'content-type': 'text/x-nix-cache-info', 'set-cookie': 'a=b' } })),
  });
}

describe('edge authentication', () => {
  it('lets a netrc user (Basic user:token) and a Bearer token through', async () => {
    const { app, seen } = setup();
    expect((await app.request('/nix-cache-info', { headers: { Authorization: basic('alice', 'tok-alice') } })).status).toBe(200);
    expect((await app.request('/nix-cache-info', { headers: { Authorization: 'Bearer tok-alice' } })).status).toBe(200);
    expect(seen).toHaveLength(2);
  });

  it('answers 401 with WWW-Authenticate and no hint for every bad credential', async () => {
    const { app, seen } = setup();
    const bad = [
      undefined,
      '',
      'Basic',
      'Basic !!!notbase64',
      basic('alice', ''),
      basic('alice', 'wrong'),
      basic('mallory', 'tok-alice'), // right token, other user
      basic('bob', 'tok-expired'),
      basic('dave', 'tok-noscope'),
      'Bearer ',
      'Bearer wrong',
      'Digest abc',
      'Bearer ' + 'x'.repeat(10_000),
    ];
    const bodies = new Set<string>();
    for (const a of bad) {
      const res = await app.request('/nix-cache-info', { headers: a === undefined ? {} : { Authorization: a } });
      expect({ a, status: res.status }).toEqual({ a, status: 401 });
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm="eris"/);
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      bodies.add(await res.text());
    }
    expect(bodies.size).toBe(1);
    expect(seen).toHaveLength(0);
  });

  it('accepts a write token for reads', async () => {
    const { app } = setup();
    expect((await app.request('/x.narinfo', { headers: { Authorization: basic('carol', 'tok-writer') } })).status).toBe(200);
  });

  it('serves the public key without credentials', async () => {
    const { app } = setup();
    expect((await app.request('/v1/public-key')).status).toBe(200);
  });

  it('allows anonymous reads only when ALLOW_ANONYMOUS is true, and names no user to the origin for them', async () => {
    const anon = setup({ ALLOW_ANONYMOUS: 'true' });
    const res = await anon.app.request('/nix-cache-info');
    expect(res.status).toBe(200);
    await res.text(); // the request log's line is written when the body has left
    expect(anon.seen[0]!.headers.get('x-eris-user')).toBeNull();
    expect(anon.logs.at(-1)).toMatchObject({ user: 'anonymous' });
    expect((await setup({ ALLOW_ANONYMOUS: 'false' }).app.request('/nix-cache-info')).status).toBe(401);
    expect((await setup().app.request('/nix-cache-info')).status).toBe(401);
  });

  it('parses credentials strictly', () => {
    expect(parseAuthorization('Basic ' + btoa('u:p:q'))).toEqual({ user: 'u', token: 'p:q' });
    expect(parseAuthorization('bearer abc')).toEqual({ token: 'abc' });
    expect(parseAuthorization('Basic ' + btoa('nocolon'))).toBeNull();
  });
});

describe('edge forwarding', () => {
  const auth = { Authorization: basic('alice', 'tok-alice') };

  it('forwards with the edge secret, no-store, and without the client credentials', async () => {
    const { app, seen } = setup();
    const res = await app.request('/abc.narinfo?x=1', { headers: { ...auth, Cookie: 'c=d', Range: 'bytes=0-1' } });
    expect(res.status).toBe(200);
    const req = seen[0]!;
    expect(req.url).toBe('http://origin.test/abc.narinfo?x=1');
    expect(req.headers.get('x-eris-edge-secret')).toBe(SECRET);
    expect(req.headers.get('authorization')).toBeNull();
    expect(req.headers.get('cookie')).toBeNull();
    expect(req.headers.get('range')).toBe('bytes=0-1');
    expect(req.headers.get('x-eris-user')).toBe('alice');
    expect(req.cache).toBe('no-store');
    expect(req.redirect).toBe('manual');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(res.headers.get('set-cookie')).toBeNull();
  });

  it('turns an unreachable origin into 502 and a slow one into 504, never 404', async () => {
    const down = setup({}, async () => {
      throw new TypeError('connect ECONNREFUSED');
    });
    const r1 = await down.app.request('/nix-cache-info', { headers: auth });
    expect(r1.status).toBe(502);
    expect(r1.headers.get('cache-control')).toBe('private, no-store');

    const slow = setup({ ORIGIN_TIMEOUT_MS: '200' }, hang);
    const started = Date.now();
    const r2 = await slow.app.request('/abc.narinfo', { headers: auth });
    expect(r2.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reports an origin that refuses the edge secret as 502, not as a 403 Nix would take for a miss', async () => {
    const { app } = setup({}, async () => new Response('forbidden', { status: 403 }));
    expect((await app.request('/abc.narinfo', { headers: auth })).status).toBe(502);
  });

  it('passes 404 and 5xx from the origin through', async () => {
    for (const status of [404, 400, 500, 503]) {
      const { app } = setup({}, async () => new Response('x', { status }));
      expect((await app.request('/abc.narinfo', { headers: auth })).status).toBe(status);
    }
  });

  it('needs the write scope for other methods; methods other than GET, HEAD and PUT are 405', async () => {
    const { app, seen } = setup();
    expect((await app.request('/x.narinfo', { method: 'PUT', headers: auth, body: 'x' })).status).toBe(401);
    const writer = { Authorization: basic('carol', 'tok-writer') };
    expect((await app.request('/x.narinfo', { method: 'POST', headers: writer, body: 'x' })).status).toBe(405);
    expect(seen).toHaveLength(0);
  });

  it('refuses to start with a bad configuration', () => {
    expect(() => parseEdgeConfig({ ORIGIN_URL: 'not a url', EDGE_SECRET: SECRET } as Env)).toThrow(/ORIGIN_URL/);
    expect(() => parseEdgeConfig({ ORIGIN_URL: 'http://o', EDGE_SECRET: 'short' } as Env)).toThrow(/EDGE_SECRET/);
    expect(() => parseEdgeConfig({ ORIGIN_URL: 'http://o', EDGE_SECRET: SECRET, ALLOW_ANONYMOUS: 'yes' } as Env)).toThrow(/ALLOW_ANONYMOUS/);
  });
});
