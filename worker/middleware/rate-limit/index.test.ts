/** The failed-auth brake in the edge app, with an injected limiter and clock. */
import { describe, expect, it } from 'vitest';
import { createWorkerApp } from '../../app.ts';
import { parseEdgeConfig } from '../../config.ts';
import type { TokenStore } from '../../tokens.ts';
import { tokenDigest } from '../../../shared/contract.ts';
import type { Env } from '../../env.ts';
import { clientKey, memoryRateLimiter, type RateLimiter } from './index.ts';

const SECRET = 'edge-secret-for-tests-0123';
const tokens: TokenStore = {
  get: async (d) => (d === (await tokenDigest('tok-alice')) ? { user: 'alice', scopes: ['read'] } : null),
};
const good = { Authorization: 'Basic ' + btoa('alice:tok-alice') };
const bad = { Authorization: 'Basic ' + btoa('alice:guess') };

function setup(limiter?: RateLimiter) {
  let t = 1_700_000_000_000;
  const lines: Record<string, unknown>[] = [];
  const app = createWorkerApp({
    config: parseEdgeConfig({ ORIGIN_URL: 'http://origin.test', EDGE_SECRET: SECRET } as Env),
    tokens,
    log: (l) => lines.push(l),
    now: () => t,
    authLimiter: limiter ?? memoryRateLimiter(5, 60_000, () => t),
    fetchOrigin: async () => new Response('ok'),
  });
  const get = (path: string, headers: Record<string, string>, ip = '203.0.113.7') =>
    app.request(path, { headers: { ...headers, 'CF-Connecting-IP': ip } });
  return { app, get, lines, advance: (ms: number) => (t += ms) };
}

describe('failed-authentication rate limit', () => {
  it('answers 429 + Retry-After, no-store, once a client is past the limit, and blocks it for the period', async () => {
    const s = setup();
    for (let i = 0; i < 5; i++) expect((await s.get('/x.narinfo', bad)).status).toBe(401);
    const limited = await s.get('/x.narinfo', bad);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('60');
    expect(limited.headers.get('cache-control')).toBe('private, no-store');
    // Blocked before any credential is checked: even the right token waits out the period.
    s.advance(30_000);
    const blocked = await s.get('/x.narinfo', good);
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('retry-after')).toBe('30');
    // Public paths stay open.
    expect((await s.get('/v1/public-key', {})).status).toBe(200);
    s.advance(30_000);
    expect((await s.get('/x.narinfo', good)).status).toBe(200);
    expect(s.lines.some((l) => l.msg === 'too many failed authentication attempts; client blocked')).toBe(true);
  });

  it('counts per client: other addresses and good tokens are not affected', async () => {
    const s = setup();
    for (let i = 0; i < 6; i++) await s.get('/x.narinfo', bad, '198.51.100.1');
    expect((await s.get('/x.narinfo', bad, '198.51.100.1')).status).toBe(429);
    expect((await s.get('/x.narinfo', bad, '198.51.100.2')).status).toBe(401);
    expect((await s.get('/x.narinfo', good, '198.51.100.2')).status).toBe(200);
  });

  it('never consults the limiter for requests that authenticate', async () => {
    let calls = 0;
    const s = setup({ limit: async () => (calls++, { success: false }) });
    for (let i = 0; i < 20; i++) expect((await s.get('/x.narinfo', good)).status).toBe(200);
    expect(calls).toBe(0);
    expect((await s.get('/x.narinfo', {})).status).toBe(429);
    expect(calls).toBe(1);
  });

  it('keeps the 401 when the limiter itself fails', async () => {
    const s = setup({ limit: async () => Promise.reject(new Error('binding down')) });
    expect((await s.get('/x.narinfo', bad)).status).toBe(401);
    expect(s.lines.some((l) => l.msg === 'auth rate limiter failed')).toBe(true);
  });

  it('uses the AUTH_RATE_LIMITER binding from the env when none is injected', async () => {
    const keys: string[] = [];
    const app = createWorkerApp({
      config: parseEdgeConfig({ ORIGIN_URL: 'http://origin.test', EDGE_SECRET: SECRET } as Env),
      tokens,
      log: () => {},
      fetchOrigin: async () => new Response('ok'),
    });
    const env = { AUTH_RATE_LIMITER: { limit: async ({ key }: { key: string }) => (keys.push(key), { success: false }) } };
    const res = await app.request('/x.narinfo', { headers: { ...bad, 'CF-Connecting-IP': '2001:db8:1:2:3:4:5:6' } }, env);
    expect(res.status).toBe(429);
    expect(keys).toEqual(['auth-fail:2001:db8:1:2::/64']);
  });

  it('keys IPv4 by address and IPv6 by /64', () => {
    expect(clientKey('192.0.2.1')).toBe('192.0.2.1');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('2001:0db8:0001:0002:ffff::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2::')).toBe('2001:db8:1:2::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey(undefined)).toBe('unknown');
    expect(clientKey('')).toBe('unknown');
  });
});
