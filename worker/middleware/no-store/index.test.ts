/** no-store in a small app: every answer, errors and passed-through ones included, says private, no-store and sets no cookie. */
import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import type { EdgeEnv } from '../../types.ts';
import { NO_STORE } from '../../../shared/contract.ts';
import { noStore } from './index.ts';

describe('noStore', () => {
  it('marks every response private, no-store and drops Set-Cookie, keeping status and body', async () => {
    const a = new Hono<EdgeEnv>();
    a.use(noStore());
    a.get('/plain', (c) => c.text('plain'));
    a.get('/cached', (c) => c.text('cacheable', 200, { 'Cache-Control': 'public, max-age=31536000' }));
    a.get('/cookie', (c) => c.text('cookie', 200, { 'Cache-Control': NO_STORE, 'Set-Cookie': 'a=b' }));
    // An answer passed on as a Response of its own (as the proxy does), with its own Cache-Control.
    a.get('/fetched', () => new Response('from origin', { status: 502, headers: { 'Cache-Control': 'max-age=60' } }));
    a.get('/missing', (c) => c.notFound());
    for (const [path, status, body] of [['/plain', 200, 'plain'], ['/cached', 200, 'cacheable'], ['/cookie', 200, 'cookie'], ['/fetched', 502, 'from origin'], ['/missing', 404, '404 Not Found']] as const) {
      const res = await a.request(path);
      expect({ path, status: res.status, cc: res.headers.get('cache-control'), cookie: res.headers.get('set-cookie'), body: await res.text() })
        .toEqual({ path, status, cc: NO_STORE, cookie: null, body });
    }
  });
});
