/** The usage counter in an app: a narinfo GET or HEAD answered 200 or 404 is one hit or miss, for the user, cache and token the edge named. */
import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import type { OriginDeps, OriginEnv } from '../../types.ts';
import { TOKEN_ID_HEADER, USER_HEADER } from '../../../../shared/contract.ts';
import { usageCounter } from './index.ts';

describe('usageCounter', () => {
  it('counts narinfo hits and misses, nothing else', async () => {
    const seen: [string, string, boolean, string | undefined][] = [];
    const usage = { narinfo: (user: string, cache: string, hit: boolean, token?: string) => seen.push([user, cache, hit, token]) };
    const a = new Hono<OriginEnv>();
    a.use(async (c, next) => {
      c.set('deps', { usage } as unknown as OriginDeps);
      if (c.req.path.startsWith('/team/')) c.set('cache', 'team');
      await next();
    });
    a.use(usageCounter());
    a.on(['GET', 'HEAD'], '/:file{[0-9a-z]+\\.narinfo}', (c) => (c.req.param('file').startsWith('a') ? c.text('narinfo') : c.text('missing', 404)));
    a.on(['GET', 'HEAD'], '/team/:file{[0-9a-z]+\\.narinfo}', (c) => c.text('narinfo'));
    a.get('/x-broken.narinfo', (c) => c.text('error', 500));
    a.get('/nix-cache-info', (c) => c.text('info'));
    a.put('/up.narinfo', (c) => c.text('stored'));

    const as = (user: string, token = 'abc123') => ({ headers: { [USER_HEADER]: user, [TOKEN_ID_HEADER]: token } });
    await a.request('/a1.narinfo', as('alice'));
    await a.request('/b1.narinfo', { method: 'HEAD', ...as('bob', 'not-hex!') });
    await a.request('/team/a2.narinfo', as('alice'));
    await a.request('/c1.narinfo');
    for (const [path, method] of [['/x-broken.narinfo', 'GET'], ['/nix-cache-info', 'GET'], ['/up.narinfo', 'PUT']]) await a.request(path!, { method, ...as('alice') });
    expect(seen).toEqual([
      ['alice', 'default', true, 'abc123'],
      ['bob', 'default', false, ''],
      ['alice', 'team', true, 'abc123'],
      ['', 'default', false, ''],
    ]);
  });
});
