/** Authentication in a small app: who gets through to a route, with which user and caches, and the one 401 for everyone else. */
import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import type { EdgeEnv } from '../../types.ts';
import { tokenDigest, tokenId, type TokenRecord } from '../../../shared/contract.ts';
import { unauthorizedBody } from '../../../shared/client-config.ts';
import { auth, parseAuthorization, type AuthOptions } from './index.ts';

const NOW = Date.parse('2026-12-01T00:00:00Z');
const RECORDS: Record<string, TokenRecord> = {
  'tok-alice': { user: 'alice', scopes: ['read'], created: '', expires: null },
  'tok-writer': { user: 'ci', scopes: ['read', 'write'], created: '', expires: null, caches: ['default', 'team'] },
  'tok-old': { user: 'bob', scopes: ['read'], created: '', expires: '2026-11-30T00:00:00Z' },
};

async function app(o: Partial<AuthOptions> = {}) {
  const byDigest = new Map<string, TokenRecord>();
  for (const [t, r] of Object.entries(RECORDS)) byDigest.set(await tokenDigest(t), r);
  const a = new Hono<EdgeEnv>();
  let failure: string | undefined;
  a.use(async (c, next) => {
    await next();
    failure = c.get('authFailure');
  });
  a.use(auth({ tokens: { get: async (d) => byDigest.get(d) ?? null }, realm: 'eris', allowAnonymous: false, publicPaths: new Set(['/v1/public-key']), defaultCache: 'default', now: () => NOW, ...o }));
  a.all('*', (c) => c.json({ user: c.get('user'), tokenId: c.get('tokenId') ?? null, caches: c.get('caches'), anonymous: c.get('anonymous') ?? false }));
  const req = async (path: string, headers: Record<string, string> = {}, method = 'GET') => {
    const res = await a.request('https://cache.example.org' + path, { method, headers });
    return { res, failure };
  };
  return req;
}

const basic = (user: string, token: string) => ({ Authorization: 'Basic ' + btoa(`${user}:${token}`) });

describe('auth', () => {
  it('lets a valid token through as Nix sends it (Basic) or as Bearer, with its user, id and caches', async () => {
    const req = await app();
    const { res } = await req('/nix-cache-info', basic('alice', 'tok-alice'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ user: 'alice', tokenId: tokenId(await tokenDigest('tok-alice')), caches: ['default'], anonymous: false });
    const bearer = await req('/team/abc.narinfo', { Authorization: 'Bearer tok-writer' });
    expect(await bearer.res.json()).toMatchObject({ user: 'ci', caches: ['default', 'team'] });
    expect((await req('/team/x.narinfo', basic('ci', 'tok-writer'), 'PUT')).res.status).toBe(200);
  });

  it('answers every refusal with the same 401 and says why only in the log', async () => {
    const req = await app();
    const cases: [string, Record<string, string>, string, string][] = [
      ['/nix-cache-info', {}, 'GET', 'missing credentials'],
      ['/nix-cache-info', basic('alice', 'tok-nobody'), 'GET', 'unknown token'],
      ['/nix-cache-info', basic('mallory', 'tok-alice'), 'GET', 'token not valid for this user, scope or time'],
      ['/nix-cache-info', basic('bob', 'tok-old'), 'GET', 'token not valid for this user, scope or time'],
      ['/x.narinfo', basic('alice', 'tok-alice'), 'PUT', 'token not valid for this user, scope or time'],
      ['/team/nix-cache-info', basic('alice', 'tok-alice'), 'GET', 'token not granted cache team'],
      ['/nix-cache-info', { Authorization: 'Bearer ' + 'x'.repeat(600) }, 'GET', 'oversized token'],
    ];
    for (const [path, headers, method, why] of cases) {
      const { res, failure } = await req(path, headers, method);
      expect({ path, why, status: res.status, failure }).toEqual({ path, why, status: 401, failure: why });
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="eris", charset="UTF-8"');
      expect(await res.text()).toBe(unauthorizedBody('cache.example.org'));
    }
  });

  it('with anonymous reads on, reads of the default cache need no token; other caches and writes still do', async () => {
    const req = await app({ allowAnonymous: true });
    const { res } = await req('/abc.narinfo');
    expect(await res.json()).toEqual({ user: 'anonymous', tokenId: null, caches: ['default'], anonymous: true });
    expect((await req('/team/abc.narinfo')).res.status).toBe(401);
    expect((await req('/abc.narinfo', {}, 'PUT')).res.status).toBe(401);
  });

  it('leaves public paths open', async () => {
    const req = await app();
    expect((await req('/v1/public-key')).res.status).toBe(200);
  });

  it('reads Basic and Bearer headers, and nothing else', () => {
    expect(parseAuthorization('Basic ' + btoa('u:p:q'))).toEqual({ user: 'u', token: 'p:q' });
    expect(parseAuthorization('bearer abc')).toEqual({ token: 'abc' });
    for (const h of [undefined, '', 'Basic', 'Basic !!!', 'Basic ' + btoa('no-colon'), 'Basic ' + btoa('u:'), 'Bearer ', 'Digest x']) {
      expect({ h, parsed: parseAuthorization(h) }).toEqual({ h, parsed: null });
    }
  });
});
