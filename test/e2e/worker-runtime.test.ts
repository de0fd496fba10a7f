/**
 * The Worker in workerd (wrangler dev --local) in front of a recording HTTP
 * origin: auth against the local KV namespace, headers, forwarding, streaming,
 * and what a client sees when the origin stalls, refuses or is down.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { IncomingHttpHeaders } from 'node:http';
import { useStack } from '../helpers/stack.ts';

const SECRET = 'runtime-test-edge-secret-42';
const BIG = 3 * 1024 * 1024 + 17;

describe('edge Worker in workerd', () => {
  let writer: string;
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const s = useStack(() => ({
    secret: SECRET,
    vars: { ORIGIN_TIMEOUT_MS: '1500' },
    origin: {
      handler(req, res) {
        seen.push({ url: req.url!, headers: req.headers });
        if (req.url === '/stall.narinfo') return; // never answers
        if (req.url === '/refuse.narinfo') return res.writeHead(403).end('no');
        if (req.url === '/big.nar') {
          res.writeHead(200, { 'content-type': 'application/x-nix-nar', 'content-length': String(BIG) });
          const chunk = Buffer.alloc(64 * 1024, 7);
          let left = BIG;
          const pump = () => {
            while (left > 0) {
              const n = Math.min(left, chunk.length);
              left -= n;
              if (!res.write(chunk.subarray(0, n))) return void res.once('drain', pump);
            }
            res.end();
          };
          return pump();
        }
        if (req.url === '/cut.nar') {
          res.writeHead(200, { 'content-type': 'application/x-nix-nar', 'content-length': '1000000' });
          res.write(Buffer.alloc(1000, 1));
          return setTimeout(() => res.destroy(), 50);
        }
        res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': 'x=y', 'cache-control': 'public, max-age=31536000' });
        res.end(`origin saw ${req.method} ${req.url}\n`);
      },
    },
    tokens: { carol: { user: 'carol', scopes: ['write'] } },
  }));
  let token: string;
  beforeAll(async () => {
    token = s.token;
    writer = s.tokens.carol!;
  });

  const get = (path: string, init: RequestInit = {}) => fetch(s.edge.url + path, { ...init, signal: AbortSignal.timeout(20_000) });
  const asAlice = () => ({ Authorization: 'Basic ' + btoa(`alice:${token}`) });

  it('refuses missing and wrong credentials with 401, no-store, and never reaches the origin', async () => {
    const before = seen.length;
    for (const headers of [{} as Record<string, string>, { Authorization: 'Basic ' + btoa('alice:nope') }, { Authorization: 'Basic ' + btoa(`bob:${token}`) }, { Authorization: 'Bearer nope' }]) {
      const res = await get('/abc.narinfo', { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Basic realm="eris"');
      expect(res.headers.get('cache-control')).toBe('private, no-store');
    }
    expect(seen.length).toBe(before);
  });

  it('forwards an authenticated request with the edge secret and without the credentials', async () => {
    const res = await get('/abc.narinfo?q=1', { headers: { ...asAlice(), Cookie: 'session=1' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('origin saw GET /abc.narinfo?q=1\n');
    expect(res.headers.get('cache-control')).toBe('private, no-store'); // the origin said public, max-age
    expect(res.headers.get('set-cookie')).toBeNull();
    const req = seen.at(-1)!;
    expect(req.headers['x-eris-edge-secret']).toBe(SECRET);
    expect(req.headers.authorization).toBeUndefined();
    expect(req.headers.cookie).toBeUndefined();
    expect(req.headers['x-eris-user']).toBe('alice');
  });

  it('accepts Bearer tokens and lets a write token read', async () => {
    expect((await get('/abc.narinfo', { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await get('/abc.narinfo', { headers: { Authorization: 'Basic ' + btoa(`carol:${writer}`) } })).status).toBe(200);
  });

  it('streams a large body through with its Content-Length and without Content-Encoding', async () => {
    const res = await get('/big.nar', { headers: { ...asAlice(), 'Accept-Encoding': 'gzip, br' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(BIG));
    expect(res.headers.get('content-encoding')).toBeNull();
    expect((await res.arrayBuffer()).byteLength).toBe(BIG);
  });

  it('passes a HEAD through without a body', async () => {
    const res = await get('/big.nar', { method: 'HEAD', headers: asAlice() });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(BIG));
    expect(seen.at(-1)!.url).toBe('/big.nar');
  });

  it('does not turn an origin cut mid-body into a clean end', async () => {
    const res = await get('/cut.nar', { headers: asAlice() });
    // undici's error for a body that ends before its Content-Length: the connection was cut, not closed cleanly.
    await expect(res.arrayBuffer()).rejects.toThrow('terminated');
  });

  it('answers 504 within the budget when the origin stalls, and 502 when it refuses the edge', async () => {
    const started = Date.now();
    const res = await get('/stall.narinfo', { headers: asAlice() });
    expect(res.status).toBe(504);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(Date.now() - started).toBeLessThan(10_000);
    const refused = await get('/refuse.narinfo', { headers: asAlice() });
    expect(refused.status).toBe(502);
  });

  it('serves the public key path without credentials', async () => {
    expect((await get('/v1/public-key')).status).toBe(200);
  });

  it('answers 502 with no-store when the origin is down', async () => {
    await s.origin.stop();
    const res = await get('/abc.narinfo', { headers: asAlice() });
    expect(res.status).toBe(502);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
  });
});
