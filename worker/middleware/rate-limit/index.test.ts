/** The failed-auth brake in the edge app, with an injected limiter and clock. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit, manualClock } from '../../test-kit.ts';
import { clientKey, memoryRateLimiter, type RateLimiter } from './index.ts';

const tokens = { 'tok-alice': { user: 'alice', scopes: ['read' as const] } };
const good = { Authorization: basic('alice', 'tok-alice') };
const bad = { Authorization: basic('alice', 'guess') };

function setup(limiter?: RateLimiter) {
  const clock = manualClock();
  const kit = edgeKit({ tokens, now: clock.now, authLimiter: limiter ?? memoryRateLimiter(5, 60_000, clock.now), origin: async () => new Response('ok') });
  const get = (path: string, headers: Record<string, string>, ip = '203.0.113.7') =>
    kit.app.request(path, { headers: { ...headers, 'CF-Connecting-IP': ip } });
  return { app: kit.app, get, lines: kit.logs, advance: clock.advance };
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
    const { app } = edgeKit({ tokens, origin: async () => new Response('ok') });
    const env = { AUTH_RATE_LIMITER: { limit: async ({ key }: { key: string }) => (keys.push(key), { success: false }) } };
    const res = await app.request('/x.narinfo', { headers: { ...bad, 'CF-Connecting-IP': '2001:db8:1:2:3:4:5:6' } }, env);
    expect(res.status).toBe(429);
    expect(keys).toEqual(['auth-fail:2001:db8:1:2::/64']);
  });

  it('keys IPv4 by address and IPv6 by its /64, however it is written', () => {
    expect(clientKey('192.0.2.1')).toBe('192.0.2.1');
    expect(clientKey('2001:db8::1')).toBe('2001:db8::/64');
    expect(clientKey('2001:0db8:0001:0002:ffff::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2::')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:DB8:1:2:0:0:0:9')).toBe('2001:db8:1:2::/64');
    expect(clientKey('::1')).toBe('::/64');
    expect(clientKey(undefined)).toBe('unknown');
    expect(clientKey('')).toBe('unknown');
  });

  it('counts an IPv4-mapped IPv6 address as its IPv4 address, not as one shared ::ffff:0:0/64 bucket', () => {
    expect(clientKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(clientKey('::ffff:c000:201')).toBe('192.0.2.1');
    expect(clientKey('::ffff:198.51.100.9')).toBe('198.51.100.9');
    expect(clientKey('::ffff:192.0.2.1')).not.toBe(clientKey('::ffff:192.0.2.2'));
  });

  it('blocks one IPv4-mapped client without blocking another', async () => {
    const s = setup();
    for (let i = 0; i < 6; i++) await s.get('/x.narinfo', bad, '::ffff:198.51.100.1');
    expect((await s.get('/x.narinfo', bad, '::ffff:198.51.100.1')).status).toBe(429);
    expect((await s.get('/x.narinfo', bad, '198.51.100.1')).status).toBe(429); // the same client, written as IPv4
    expect((await s.get('/x.narinfo', good, '::ffff:198.51.100.2')).status).toBe(200);
  });

  it('keeps an unparseable address as its own key', () => {
    expect(clientKey('not:an:address')).toBe('invalid:not:an:address');
  });
});
