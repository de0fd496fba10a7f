/** GET /v1/cache-config and the 401 body: what a client needs, per cache the token may use. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit } from '../test-kit.ts';
import { unauthorizedBody, type CacheConfig } from '../../shared/client-config.ts';

const KEY_D = 'default-1:' + 'A'.repeat(43) + '=';
const KEY_A = 'team-a-1:' + 'B'.repeat(43) + '=';
const LIST = {
  caches: [
    { name: 'default', priority: 30, publicKeys: [KEY_D], default: true },
    { name: 'team-a', priority: 10, publicKeys: [KEY_A], default: false },
  ],
};

const kit = () =>
  edgeKit({
    tokens: {
      'tok-a': { user: 'alice', scopes: ['read'], caches: ['team-a', 'default'] },
      'tok-old': { user: 'carol', scopes: ['read'] },
    },
    origin: async (req) => (new URL(req.url).pathname === '/v1/caches' ? Response.json(LIST) : new Response('no\n', { status: 404 })),
  });

describe('GET /v1/cache-config', () => {
  it('gives each granted cache\'s URL, keys and priority, and the nix.conf and netrc lines', async () => {
    const k = kit();
    const res = await k.app.request('https://cache.example.org/v1/cache-config', { headers: { Authorization: basic('alice', 'tok-a') } }, k.env);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(await res.json()).toEqual({
      user: 'alice',
      host: 'cache.example.org',
      caches: [
        { ...LIST.caches[0], url: 'https://cache.example.org/default' },
        { ...LIST.caches[1], url: 'https://cache.example.org/team-a' },
      ],
      nixConf: `extra-substituters = https://cache.example.org/default https://cache.example.org/team-a\nextra-trusted-public-keys = ${KEY_D} ${KEY_A}\nnetrc-file = /etc/nix/netrc\n`,
      netrc: 'machine cache.example.org login alice password <token>',
    });
  });

  it('shows a token without a cache list the default cache only; without a token it is a 401 saying what netrc needs', async () => {
    const k = kit();
    const old = await (await k.app.request('https://cache.example.org/v1/cache-config', { headers: { Authorization: `Bearer tok-old` } }, k.env)).json<CacheConfig>();
    expect(old.caches.map((c) => c.name)).toEqual(['default']);
    expect(old.user).toBe('carol');
    const anon = await k.app.request('https://cache.example.org/v1/cache-config', {}, k.env);
    expect(anon.status).toBe(401);
    const body = await anon.text();
    expect(body).toBe(unauthorizedBody('cache.example.org'));
    expect(body).toBe('authentication required: Nix sends the token from a netrc entry "machine cache.example.org login <user> password <token>" (the file nix.conf\'s netrc-file names, /etc/nix/netrc by default)\n');
  });
});
