/** `eris push` at the edge: grant, scope and size checked before the body is read; the rest streamed to the origin. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit } from '../test-kit.ts';
import { MAX_UPLOAD_HEADER, pushUrls } from '../../shared/push-protocol.ts';

const tokens = {
  'tok-read': { user: 'r', scopes: ['read' as const], caches: ['team'] },
  'tok-write': { user: 'w', scopes: ['read' as const, 'write' as const], caches: ['team'] },
  'tok-other': { user: 'o', scopes: ['read' as const, 'write' as const], caches: ['elsewhere'] },
  'tok-expired': { user: 'x', scopes: ['read' as const, 'write' as const], caches: ['team'], expires: '2000-01-01T00:00:00Z' },
};
const ID = '0123456789abcdef0123456789abcdef';
const SHA = 'a'.repeat(64);

function setup() {
  const seen: { method: string; path: string; length: string | null; body: string }[] = [];
  const kit = edgeKit({
    tokens,
    env: { MAX_UPLOAD_BYTES: '1000' },
    origin: async (req) => {
      const u = new URL(req.url);
      seen.push({ method: req.method, path: u.pathname + u.search, length: req.headers.get('content-length'), body: await req.text() });
      return new Response('{"missing":[]}', { status: 200, headers: { 'content-type': 'application/json' } });
    },
  });
  /** A body that fails if anyone reads it: proves a refusal came before the body. */
  const untouchable = () => new ReadableStream({ pull() { throw new Error('body was read'); } });
  const send = (method: string, path: string, headers: Record<string, string>, body?: BodyInit) =>
    kit.app.request(path, { method, headers, body, duplex: 'half' } as RequestInit);
  return { ...kit, seen, untouchable, send };
}

describe('eris push at the edge', () => {
  it('the missing question: a reader of the cache may ask; the answer names the largest part the edge forwards', async () => {
    const { seen, send } = setup();
    const body = JSON.stringify({ paths: ['/nix/store/x'] });
    const res = await send('POST', pushUrls.missing('team'), { Authorization: basic('r', 'tok-read'), 'Content-Length': String(body.length) }, body);
    expect(res.status).toBe(200);
    expect(res.headers.get(MAX_UPLOAD_HEADER)).toBe('1000');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(seen).toEqual([{ method: 'POST', path: '/team/v1/push/missing', length: String(body.length), body }]);
  });

  it('upload starts, states, parts and batches need write on that cache; read-only, other-cache and expired tokens get 401 before the body is read', async () => {
    const { seen, send, untouchable } = setup();
    const requests: [string, string][] = [
      ['POST', pushUrls.uploads('team')],
      ['POST', pushUrls.batch('team')],
      ['PUT', pushUrls.part('team', ID, 0, SHA)],
      ['GET', pushUrls.upload('team', ID)],
    ];
    for (const [method, path] of requests) {
      for (const [user, token] of [['r', 'tok-read'], ['o', 'tok-other'], ['x', 'tok-expired'], ['', '']] as const) {
        const headers: Record<string, string> = token ? { Authorization: basic(user, token) } : {};
        const res = await send(method, path, method === 'GET' ? headers : { ...headers, 'Content-Length': '10' }, method === 'GET' ? undefined : untouchable());
        expect({ method, token, status: res.status }).toEqual({ method, token, status: 401 });
      }
    }
    // Another cache's token asking what is missing in this one: refused too.
    const res = await send('POST', pushUrls.missing('team'), { Authorization: basic('o', 'tok-other'), 'Content-Length': '10' }, untouchable());
    expect(res.status).toBe(401);
    expect(seen).toHaveLength(0);
  });

  it('a part over MAX_UPLOAD_BYTES, or without a Content-Length: refused before the body is read', async () => {
    const { seen, send, untouchable } = setup();
    const auth = { Authorization: basic('w', 'tok-write') };
    const over = await send('PUT', pushUrls.part('team', ID, 0, SHA), { ...auth, 'Content-Length': '1001' }, untouchable());
    expect(over.status).toBe(413);
    expect(await over.text()).toMatch(/eris push/);
    const start = await send('POST', pushUrls.uploads('team'), { ...auth, 'Content-Length': '5000' }, untouchable());
    expect(start.status).toBe(413);
    const batch = await send('POST', pushUrls.batch('team'), { ...auth, 'Content-Length': '1001' }, untouchable());
    expect(batch.status).toBe(413);
    expect(await batch.text()).toMatch(/eris push/);
    expect((await send('POST', pushUrls.batch('team'), auth, untouchable())).status).toBe(411);
    expect(seen).toHaveLength(0);
  });

  it('a writer reaches the origin with the part, its length and its query; never under the global /v1/', async () => {
    const { seen, send } = setup();
    const auth = { Authorization: basic('w', 'tok-write') };
    const res = await send('PUT', pushUrls.part('team', ID, 0, SHA), { ...auth, 'Content-Length': '5' }, 'hello');
    expect(res.status).toBe(200);
    expect((await send('GET', pushUrls.upload('team', ID), auth)).status).toBe(200);
    expect((await send('POST', pushUrls.batch('team'), { ...auth, 'Content-Length': '6' }, 'batch!')).status).toBe(200);
    expect(seen).toEqual([
      { method: 'PUT', path: `/team/v1/push/uploads/${ID}?offset=0&sha256=${SHA}`, length: '5', body: 'hello' },
      { method: 'GET', path: `/team/v1/push/uploads/${ID}`, length: null, body: '' },
      { method: 'POST', path: '/team/v1/push/batch', length: '6', body: 'batch!' },
    ]);
    const bare = await send('POST', '/v1/push/missing', { ...auth, 'Content-Length': '2' }, '{}');
    expect(bare.status).toBe(405);
    expect((await send('POST', '/v1/push/batch', { ...auth, 'Content-Length': '2' }, '{}')).status).toBe(405);
    expect(seen).toHaveLength(3);
  });
});
