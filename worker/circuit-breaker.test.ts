/**
 * The circuit breaker, alone and in the edge app with the origin injected as
 * a function (as worker/app.test.ts does) and a fake clock.
 */
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.ts';
import { parseEdgeConfig } from './config.ts';
import { basic, edgeKit, hang, manualClock as clock, TEST_SECRET as SECRET } from './test-kit.ts';
import type { Env } from './env.ts';

describe('CircuitBreaker', () => {
  const make = (c = clock()) => ({ c, b: new CircuitBreaker({ threshold: 3, cooldownMs: 5000, trialTimeoutMs: 20_000, now: c.now }) });
  const fail = (b: CircuitBreaker) => {
    const a = b.admit();
    if (!a.ok) throw new Error('not admitted');
    a.permit.failure();
  };

  it('opens after N consecutive failures, not after N failures with a success between', () => {
    const { b } = make();
    fail(b);
    fail(b);
    const a = b.admit();
    if (a.ok) a.permit.success();
    fail(b);
    fail(b);
    expect(b.current).toBe('closed');
    fail(b);
    expect(b.current).toBe('open');
  });

  it('answers at once while open, with the time left, then lets exactly one trial through', () => {
    const { b, c } = make();
    for (let i = 0; i < 3; i++) fail(b);
    const r = b.admit();
    expect(r).toEqual({ ok: false, retryAfterMs: 5000 });
    c.advance(4000);
    expect(b.admit()).toEqual({ ok: false, retryAfterMs: 1000 });
    c.advance(1000);
    const trial = b.admit();
    expect(trial.ok && trial.permit.trial).toBe(true);
    expect(b.current).toBe('half-open');
    expect(b.admit().ok).toBe(false); // one trial at a time
    if (trial.ok) trial.permit.success();
    expect(b.current).toBe('closed');
    expect(b.admit().ok).toBe(true);
  });

  it('a failed trial opens it for another cool-down', () => {
    const { b, c } = make();
    for (let i = 0; i < 3; i++) fail(b);
    c.advance(5000);
    fail(b); // the trial
    expect(b.current).toBe('open');
    expect(b.admit()).toEqual({ ok: false, retryAfterMs: 5000 });
  });

  it('never stays stuck half-open when a trial never reports', () => {
    const { b, c } = make();
    for (let i = 0; i < 3; i++) fail(b);
    c.advance(5000);
    expect(b.admit().ok).toBe(true); // trial lost
    c.advance(19_999);
    expect(b.admit().ok).toBe(false);
    c.advance(1);
    const again = b.admit();
    expect(again.ok).toBe(true);
    if (again.ok) again.permit.success();
    expect(b.current).toBe('closed');
  });

  it('counts each permit once', () => {
    const { b } = make();
    const a = b.admit();
    if (!a.ok) throw new Error();
    a.permit.failure();
    a.permit.failure();
    a.permit.failure();
    expect(b.current).toBe('closed');
  });
});

const tokens = { 'tok-alice': { user: 'alice', scopes: ['read' as const] } };
const auth = { Authorization: basic('alice', 'tok-alice') };

function edge(env: Partial<Env>, origin: (req: Request) => Promise<Response>) {
  const c = clock();
  let calls = 0;
  const kit = edgeKit({
    env,
    tokens,
    now: c.now,
    origin: (req) => {
      calls++;
      return origin(req);
    },
  });
  return { app: kit.app, clock: c, calls: () => calls, messages: kit.messages };
}

describe('the edge behind its circuit breaker', () => {
  it('answers 502 for the first failures, then 503 + Retry-After without calling the origin, then recovers', async () => {
      let up = false;
      const e = edge({ BREAKER_THRESHOLD: '3', BREAKER_COOLDOWN_MS: '7000' }, async () => {
        if (!up) throw new TypeError('connect ECONNREFUSED');
        return new Response('StoreDir: /nix/store\n');
      });
      const get = () => e.app.request('/nix-cache-info', { headers: auth });
      for (let i = 0; i < 3; i++) {
        const r = await get();
        expect(r.status).toBe(502);
        expect(r.headers.get('cache-control')).toBe('private, no-store');
      }
      expect(e.calls()).toBe(3);
      const open = await get();
      expect(open.status).toBe(503);
      expect(open.headers.get('retry-after')).toBe('7');
      expect(open.headers.get('cache-control')).toBe('private, no-store');
      expect(await open.text()).toMatch(/origin unavailable/);
      expect(e.calls()).toBe(3);
      e.clock.advance(6500);
      expect((await get()).headers.get('retry-after')).toBe('1');
      up = true;
      e.clock.advance(500);
      expect((await get()).status).toBe(200); // the trial
      expect((await get()).status).toBe(200);
      expect(e.calls()).toBe(5);
      // Each failure and each change of state is logged once.
      expect(e.messages().map((l) => l.msg === 'origin circuit breaker' ? `${l.from}->${l.to}` : l.msg)).toEqual([
        'origin unreachable', 'origin unreachable', 'origin unreachable', 'closed->open', 'open->half-open', 'half-open->closed',
      ]);
  });

  it('counts timeouts and gateway errors (tunnel up, origin down) as failures, origin answers as successes', async () => {
      const answers: ((req: Request) => Promise<Response>)[] = [];
      const e = edge({ BREAKER_THRESHOLD: '3', ORIGIN_TIMEOUT_MS: '100' }, (req) => answers.shift()!(req));
      // Time out, 530 from Cloudflare (tunnel down), then a 404 — the origin is there.
      answers.push(hang, async () => new Response('<html>1033</html>', { status: 530 }), async () => new Response('no', { status: 404 }));
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await e.app.request('/abc.narinfo', { headers: auth })).status);
      expect(codes).toEqual([504, 502, 404]);
      answers.push(async () => new Response('busy', { status: 503, headers: { 'retry-after': '1' } }), hang, async () => new Response('', { status: 502 }), hang);
      codes.length = 0;
      for (let i = 0; i < 5; i++) codes.push((await e.app.request('/abc.narinfo', { headers: auth })).status);
      // 503 from the origin is an answer; then three failures in a row open the circuit.
      expect(codes).toEqual([503, 504, 502, 504, 503]);
  });

  it('says Accept-Ranges: bytes on its own 5xx for NARs, so Nix keeps resuming a cut download through an outage', async () => {
      const e = edge({ BREAKER_THRESHOLD: '2' }, async () => {
        throw new TypeError('connect ECONNREFUSED');
      });
      const nar = '/nar/0000000000000000000000000000000a-0000000000000000000000000000000000000000000000000000.nar';
      for (const status of [502, 502, 503]) {
        const r = await e.app.request(nar, { headers: { ...auth, Range: 'bytes=100-' } });
        expect(r.status).toBe(status);
        expect(r.headers.get('accept-ranges')).toBe('bytes');
      }
      expect((await e.app.request('/x.narinfo', { headers: auth })).headers.get('accept-ranges')).toBeNull();
  });

  it('does not count clients that fail authentication', async () => {
    const e = edge({ BREAKER_THRESHOLD: '1' }, async () => new Response('ok'));
    for (let i = 0; i < 5; i++) expect((await e.app.request('/x.narinfo')).status).toBe(401);
    expect((await e.app.request('/x.narinfo', { headers: auth })).status).toBe(200);
  });

  it('refuses bad breaker settings', () => {
    for (const [k, v] of [['BREAKER_THRESHOLD', '0'], ['BREAKER_THRESHOLD', 'x'], ['BREAKER_COOLDOWN_MS', '5']]) {
      expect(() => parseEdgeConfig({ ORIGIN_URL: 'http://o', EDGE_SECRET: SECRET, [k!]: v } as unknown as Env)).toThrow(k);
    }
  });
});
