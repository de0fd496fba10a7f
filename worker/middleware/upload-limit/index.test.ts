/** Uploads at the edge: write scope on the cache first, then the size limit, before the body is read; then streamed to the origin. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit } from '../../test-kit.ts';

const tokens = {
  'tok-read': { user: 'r', scopes: ['read' as const] },
  'tok-write': { user: 'w', scopes: ['read' as const, 'write' as const], caches: ['default', 'team'] },
  'tok-other': { user: 'o', scopes: ['read' as const, 'write' as const], caches: ['elsewhere'] },
};

function setup(env: Record<string, string> = {}) {
  const seen: { method: string; path: string; length: string | null; body: string }[] = [];
  const kit = edgeKit({
    tokens,
    env,
    origin: async (req) => {
      seen.push({ method: req.method, path: new URL(req.url).pathname, length: req.headers.get('content-length'), body: await req.text() });
      return new Response('ok\n', { status: 200 });
    },
  });
  /** A body that fails if anyone reads it: proves a refusal came before the body. */
  const untouchable = () => new ReadableStream({ pull() { throw new Error('body was read'); } });
  const put = (path: string, headers: Record<string, string>, body: BodyInit) =>
    kit.app.request(path, { method: 'PUT', headers, body, duplex: 'half' } as RequestInit);
  return { ...kit, seen, untouchable, put };
}

describe('PUT at the edge', () => {
  it('no token, a read-only token, or a writer of another cache: 401 before the body is read, nothing reaches the origin', async () => {
    const { seen, untouchable, put } = setup();
    for (const [path, headers] of [
      ['/nar/x.nar.xz', {}],
      ['/nar/x.nar.xz', { Authorization: basic('r', 'tok-read') }],
      ['/team/nar/x.nar.xz', { Authorization: basic('o', 'tok-other') }],
    ] as const) {
      const res = await put(path, { ...headers, 'Content-Length': '10' }, untouchable());
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
    }
    expect(seen).toHaveLength(0);
  });

  it('over MAX_UPLOAD_BYTES: 413 with one line naming eris push (and ssh + eris publish), before the body is read', async () => {
    const { seen, untouchable, put } = setup({ MAX_UPLOAD_BYTES: '1000' });
    const res = await put('/nar/x.nar.xz', { Authorization: basic('w', 'tok-write'), 'Content-Length': '1001' }, untouchable());
    expect(res.status).toBe(413);
    const text = await res.text();
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    expect(text).toMatch(/eris push --cache default PATH.*ssh.*eris publish PATH --cache default/);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(seen).toHaveLength(0);
  });

  it('a writer within the limit reaches the origin with the body and its length, under a cache prefix too', async () => {
    const { seen, put } = setup({ MAX_UPLOAD_BYTES: '1000' });
    for (const path of ['/abc.narinfo', '/team/abc.narinfo']) {
      const res = await put(path, { Authorization: basic('w', 'tok-write'), 'Content-Length': '5' }, 'hello');
      expect(res.status).toBe(200);
    }
    expect(seen).toEqual([
      { method: 'PUT', path: '/abc.narinfo', length: '5', body: 'hello' },
      { method: 'PUT', path: '/team/abc.narinfo', length: '5', body: 'hello' },
    ]);
  });

  it('refuses a bad MAX_UPLOAD_BYTES at start-up', () => {
    expect(() => setup({ MAX_UPLOAD_BYTES: '10MB' })).toThrow(/MAX_UPLOAD_BYTES/);
  });
});
