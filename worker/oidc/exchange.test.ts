/**
 * The OIDC exchange through the edge app (the real composition root, config
 * parsing and auth middleware), with a test issuer answering the edge's
 * discovery/JWKS fetches, a stand-in origin and a manual clock. Each refusal
 * names its check in one line, hands out no token and asks the origin nothing.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { basic, edgeKit, manualClock } from '../test-kit.ts';
import { memoryRateLimiter } from '../middleware/rate-limit/index.ts';
import { createTestIssuer, type TestIssuer } from './test-issuer.ts';
import type { ExchangeResponse } from '../../shared/oidc-exchange.ts';
import { USER_HEADER } from '../../shared/contract.ts';

const ISSUER = 'https://token.actions.example.test';
const AUD = 'https://cache.example.test';
const SECRET = 'oidc-token-secret-for-tests-0123456789';
const HASH = 'a'.repeat(32);

const trust = (rules: unknown[] = RULES) => JSON.stringify({ issuers: [{ name: 'github', url: ISSUER, audience: AUD }], rules });
const RULES = [
  { name: 'app-main', issuer: 'github', claims: { repository_id: 123456789, repository_owner_id: '4242', ref: 'refs/heads/main' }, caches: ['ci'], scopes: ['write'], minutes: 15 },
  { name: 'app-prs', issuer: 'github', claims: { repository: 'acme/app', ref: 'refs/pull/*/merge' }, caches: ['ci'], scopes: ['read'], minutes: 10 },
];

let issuer: TestIssuer;
beforeAll(async () => {
  issuer = await createTestIssuer(ISSUER);
});

function setup(o: { rules?: unknown[]; clock?: ReturnType<typeof manualClock>; limit?: number } = {}) {
  const clock = o.clock ?? manualClock(Date.now());
  const kit = edgeKit({
    env: { OIDC_TRUST: trust(o.rules), OIDC_TOKEN_SECRET: SECRET },
    now: clock.now,
    oidcFetch: (input, init) => issuer.handle(new Request(input, init)),
    authLimiter: o.limit ? memoryRateLimiter(o.limit, 60_000, clock.now) : undefined,
    origin: async (req) => new Response(`origin: ${req.method} ${new URL(req.url).pathname}\n`),
  });
  const exchange = (jwt: string | undefined, query = '') =>
    kit.app.request(`http://cache.example.test/v1/oidc/token${query}`, { method: 'POST', headers: jwt === undefined ? {} : { Authorization: `Bearer ${jwt}` } }, kit.env);
  const claims = (overrides: Record<string, unknown> = {}) => issuer.claims({ aud: AUD, ...overrides }, clock.now());
  const withToken = (method: string, path: string, auth: string) =>
    kit.app.request(path, { method, headers: { Authorization: auth, ...(method === 'PUT' ? { 'Content-Length': '3' } : {}) }, body: method === 'PUT' ? 'abc' : undefined }, kit.env);
  return { ...kit, clock, exchange, claims, withToken };
}

async function exchanged(s: ReturnType<typeof setup>, overrides: Record<string, unknown> = {}): Promise<ExchangeResponse> {
  const res = await s.exchange(await issuer.sign(s.claims(overrides)));
  expect(res.status).toBe(200);
  return res.json();
}

describe('POST /v1/oidc/token', () => {
  it('exchanges a matching RS256 or ES256 token for a token that pushes to its cache as the CI subject', async () => {
    const s = setup();
    for (const key of [issuer.rsa, issuer.ec]) {
      const res = await s.exchange(await issuer.sign(s.claims(), { key }));
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      const body: ExchangeResponse = await res.json();
      expect(body).toEqual({ token: expect.stringMatching(/^eris_oidc\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/), login: 'oidc', user: 'github:acme/app@refs/heads/main',
        caches: ['ci'], scopes: ['read', 'write'], expires: new Date(Math.floor(s.clock.now() / 1000) * 1000 + 15 * 60_000).toISOString() });
      s.seen.length = 0;
      const put = await s.withToken('PUT', `/ci/${HASH}.narinfo`, basic('oidc', body.token));
      expect(put.status).toBe(200);
      await put.text(); // the request log's line is written when the body has left
      expect(s.seen.map((r) => r.headers.get(USER_HEADER))).toEqual(['github:acme/app@refs/heads/main']);
      expect((await s.withToken('GET', '/ci/nix-cache-info', `Bearer ${body.token}`)).status).toBe(200);
    }
    // The request log names the subject; the exchange logs which rule granted what, never a token.
    expect(s.logs).toContainEqual(expect.objectContaining({ method: 'PUT', path: `/ci/${HASH}.narinfo`, status: 200, user: 'github:acme/app@refs/heads/main' }));
    expect(s.logs).toContainEqual(expect.objectContaining({ msg: 'oidc token issued', user: 'github:acme/app@refs/heads/main', rule: 'app-main', caches: ['ci'] }));
    // The issuance line and the requests made with the token name it by the same id.
    const issued = s.logs.filter((l) => l.msg === 'oidc token issued').map((l) => l.token);
    const used = s.logs.filter((l) => l.method === 'PUT').map((l) => l.token);
    expect(issued).toEqual(used);
    expect(issued[0]).toMatch(/^[0-9a-f]{12}$/);
    expect(JSON.stringify(s.logs)).not.toContain('eris_oidc.');
    // One discovery + one JWKS fetch served every exchange.
    expect(issuer.requests()).toBeLessThanOrEqual(2);
  });

  it('writes a netrc line for the host asked, with ?format=netrc', async () => {
    const s = setup();
    const res = await s.exchange(await issuer.sign(s.claims()), '?format=netrc');
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^machine cache\.example\.test login oidc password eris_oidc\.\S+\n$/);
  });

  it('grants only its caches and scopes: other caches, the default cache, and pushes under a read-only rule are the usual 401', async () => {
    const s = setup();
    const { token } = await exchanged(s);
    const bad = await s.withToken('GET', '/ci/nix-cache-info', basic('oidc', 'eris_wrong'));
    for (const path of ['/other/nix-cache-info', '/nix-cache-info', `/${HASH}.narinfo`]) {
      const res = await s.withToken('GET', path, basic('oidc', token));
      expect({ path, status: res.status, www: res.headers.get('www-authenticate') }).toEqual({ path, status: 401, www: bad.headers.get('www-authenticate') });
    }
    // The login must be `oidc` (as the netrc line says), like a stored token's must be its user.
    expect((await s.withToken('GET', '/ci/nix-cache-info', basic('github:acme/app', token))).status).toBe(401);
    expect((await s.withToken('GET', '/ci/nix-cache-info', basic('mallory', token))).status).toBe(401);

    const pr = await exchanged(s, { ref: 'refs/pull/7/merge' });
    expect(pr).toMatchObject({ user: 'github:acme/app@refs/pull/7/merge', scopes: ['read'], caches: ['ci'] });
    expect((await s.withToken('GET', `/ci/${HASH}.narinfo`, basic('oidc', pr.token))).status).toBe(200);
    s.seen.length = 0;
    expect((await s.withToken('PUT', `/ci/${HASH}.narinfo`, basic('oidc', pr.token))).status).toBe(401);
    expect(s.seen).toEqual([]);
  });

  it('stops working at its expiry, with the same 401 as a bad token', async () => {
    const s = setup();
    const { token } = await exchanged(s);
    const bad = await s.withToken('GET', '/ci/nix-cache-info', basic('oidc', 'eris_wrong'));
    s.clock.advance(15 * 60_000 - 1000);
    expect((await s.withToken('GET', '/ci/nix-cache-info', basic('oidc', token))).status).toBe(200);
    s.clock.advance(1000);
    const expired = await s.withToken('GET', '/ci/nix-cache-info', basic('oidc', token));
    expect({ status: expired.status, body: await expired.text(), www: expired.headers.get('www-authenticate') })
      .toEqual({ status: 401, body: await bad.text(), www: bad.headers.get('www-authenticate') });
  });

  it('refuses a token with a changed payload or signed under another secret', async () => {
    const s = setup();
    const { token } = await exchanged(s, { ref: 'refs/pull/7/merge' });
    const [prefix, payload, mac] = token.split('.') as [string, string, string];
    const forged = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')));
    forged.scopes = ['read', 'write'];
    const forgedPayload = btoa(JSON.stringify(forged)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect((await s.withToken('GET', '/ci/nix-cache-info', basic('oidc', `${prefix}.${forgedPayload}.${mac}`))).status).toBe(401);
    const other = edgeKit({ env: { OIDC_TRUST: trust(), OIDC_TOKEN_SECRET: SECRET.replace('0', '1') }, now: s.clock.now, origin: async () => new Response('ok') });
    expect((await other.app.request('/ci/nix-cache-info', { headers: { Authorization: basic('oidc', token) } }, other.env)).status).toBe(401);
  });

  it('cuts a rule off at once: without the rule its tokens are refused; a narrowed rule narrows the tokens already out', async () => {
    const clock = manualClock(Date.now());
    const before = setup({ clock });
    const { token } = await exchanged(before);
    const auth = basic('oidc', token);
    // The same secret, the next deploy's rules.
    const removed = setup({ clock, rules: RULES.filter((r) => r.name !== 'app-main') });
    expect((await removed.withToken('GET', '/ci/nix-cache-info', auth)).status).toBe(401);
    expect((await removed.exchange(await issuer.sign(removed.claims()))).status).toBe(403);
    const narrowed = setup({ clock, rules: [{ ...RULES[0]!, scopes: ['read'], minutes: 5 }] });
    expect((await narrowed.withToken('GET', '/ci/nix-cache-info', auth)).status).toBe(200);
    expect((await narrowed.withToken('PUT', `/ci/${HASH}.narinfo`, auth)).status).toBe(401);
    clock.advance(5 * 60_000);
    expect((await narrowed.withToken('GET', '/ci/nix-cache-info', auth)).status).toBe(401);
    expect((await before.withToken('GET', '/ci/nix-cache-info', auth)).status).toBe(200);
  });

  describe('refuses, naming the check, with no token and no origin request', () => {
    const cases: [string, (s: ReturnType<typeof setup>) => Promise<string | undefined>, number, string][] = [
      ['no token', async () => undefined, 401, "expected Authorization: Bearer <the CI job's identity token>"],
      ['garbage', async () => 'not-a-jwt', 401, 'malformed token (not a signed JWT)'],
      ['wrong repository', async (s) => issuer.sign(s.claims({ repository: 'evil/app', repository_id: '666', sub: 'repo:evil/app:ref:refs/heads/main' })), 403, 'no trust rule matches this token'],
      ['a re-created repository (same name, new id)', async (s) => issuer.sign(s.claims({ repository_id: '987654321' })), 403, 'no trust rule matches this token'],
      ['another branch', async (s) => issuer.sign(s.claims({ ref: 'refs/heads/dev' })), 403, 'no trust rule matches this token'],
      ['wrong audience', async (s) => issuer.sign(s.claims({ aud: 'https://other.example.test' })), 401, 'wrong audience'],
      ['expired', async (s) => issuer.sign(s.claims({ exp: Math.floor(s.clock.now() / 1000) - 61 })), 401, 'token expired'],
      ['no expiry', async (s) => issuer.sign(s.claims({ exp: undefined })), 401, 'token has no expiry (exp)'],
      ['not yet valid', async (s) => issuer.sign(s.claims({ nbf: Math.floor(s.clock.now() / 1000) + 120 })), 401, 'token not yet valid (nbf)'],
      ['issued in the future', async (s) => issuer.sign(s.claims({ iat: Math.floor(s.clock.now() / 1000) + 120 })), 401, 'token issued in the future (iat)'],
      ['wrong issuer', async (s) => issuer.sign(s.claims({ iss: 'https://evil.example.test' })), 401, 'unknown issuer'],
      ['unknown kid', async (s) => issuer.sign(s.claims(), { key: await issuer.newKey('rsa-unpublished') }), 401, 'unknown key id (kid)'],
      ['a published kid over another key', async (s) => issuer.sign(s.claims(), { key: { ...(await issuer.newKey('x')), kid: 'rsa-1' } }), 401, 'bad signature'],
      ['ES256 header over the RSA key', async (s) => issuer.sign(s.claims(), { header: { alg: 'ES256' } }), 401, 'key is not for this alg'],
      ['alg none', async (s) => {
        const t = await issuer.sign(s.claims(), { header: { alg: 'none' } });
        return t.slice(0, t.lastIndexOf('.') + 1);
      }, 401, 'unsupported alg "none" (only RS256, ES256)'],
      ['alg none with a signature', async (s) => issuer.sign(s.claims(), { header: { alg: 'none' } }), 401, 'unsupported alg "none" (only RS256, ES256)'],
      ['HS256 keyed with the public key', async (s) => issuer.hs256WithPublicKey(s.claims()), 401, 'unsupported alg "HS256" (only RS256, ES256)'],
      ['tampered payload', async (s) => {
        const [h, , sig] = (await issuer.sign(s.claims({ ref: 'refs/heads/dev' }))).split('.');
        const p = btoa(JSON.stringify(s.claims())).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        return `${h}.${p}.${sig}`;
      }, 401, 'bad signature'],
    ];
    for (const [name, make, status, check] of cases) {
      it(name, async () => {
        const s = setup();
        const res = await s.exchange(await make(s));
        const body = await res.text();
        expect({ status: res.status, body }).toEqual({ status, body: `oidc token refused: ${check}\n` });
        expect(body).not.toContain('eris_oidc');
        expect(s.seen).toEqual([]);
        expect(s.logs).toContainEqual(expect.objectContaining({ path: '/v1/oidc/token', status, user: null, auth: `oidc: ${check}` }));
      });
    }
  });

  it('answers 503 while the issuer\'s keys cannot be fetched, retries at most every 10 s, then works', async () => {
    const s = setup();
    issuer.setDown(true);
    try {
      const before = issuer.requests();
      const jwt = await issuer.sign(s.claims());
      for (let i = 0; i < 5; i++) {
        const res = await s.exchange(jwt);
        expect({ status: res.status, body: await res.text() }).toEqual({ status: 503, body: "oidc token refused: the issuer's keys cannot be fetched; retry later\n" });
      }
      expect(issuer.requests() - before).toBe(1);
      expect(s.messages()).toContainEqual(expect.objectContaining({ msg: "oidc: fetching the issuer's keys failed", issuer: ISSUER }));
      issuer.setDown(false);
      s.clock.advance(10_000);
      expect((await s.exchange(jwt)).status).toBe(200);
    } finally {
      issuer.setDown(false);
    }
  });

  it('fetches the JWKS again for a new kid (key rotation), but at most once a minute for unknown ones', async () => {
    const s = setup();
    await exchanged(s); // keys just fetched: an unknown kid now fetches nothing
    const stranger = await issuer.newKey('rsa-stranger');
    const unknown = async () => expect((await s.exchange(await issuer.sign(s.claims(), { key: stranger }))).status).toBe(401);
    let start = issuer.requests();
    await unknown();
    expect(issuer.requests() - start).toBe(0);
    s.clock.advance(60_000);
    start = issuer.requests();
    for (let i = 0; i < 10; i++) await unknown();
    expect(issuer.requests() - start).toBe(2); // one discovery + JWKS fetch for ten unknown kids
    const rotated = await issuer.newKey('rsa-2');
    issuer.publish(rotated);
    s.clock.advance(60_000);
    expect((await s.exchange(await issuer.sign(s.claims(), { key: rotated }))).status).toBe(200);
  });

  it('counts refusals as failed logins: past the limit the client gets 429', async () => {
    const s = setup({ limit: 3 });
    const wrong = await issuer.sign(s.claims({ repository_id: '1' }));
    for (let i = 0; i < 3; i++) expect((await s.exchange(wrong)).status).toBe(403);
    expect((await s.exchange(wrong)).status).toBe(429);
    expect((await s.exchange(await issuer.sign(s.claims()))).status).toBe(429);
  });

  it('is 404 on an edge without OIDC_TRUST, and an exchanged-looking token is an unknown one there', async () => {
    const k = edgeKit({});
    const res = await k.app.request('/v1/oidc/token', { method: 'POST', headers: { Authorization: 'Bearer x.y.z' } }, k.env);
    expect(res.status).toBe(404);
    expect((await k.app.request('/nix-cache-info', { headers: { Authorization: basic('oidc', 'eris_oidc.e30.AAAA') } }, k.env)).status).toBe(401);
  });

  it('refuses to start on bad trust rules or a short secret, naming the key', () => {
    const env = (e: Record<string, string>) => () => edgeKit({ env: e });
    expect(env({ OIDC_TRUST: trust() })).toThrow(/^OIDC_TRUST needs OIDC_TOKEN_SECRET of at least 32 characters/);
    expect(env({ OIDC_TRUST: trust(), OIDC_TOKEN_SECRET: 'short' })).toThrow(/OIDC_TOKEN_SECRET/);
    expect(env({ OIDC_TRUST: '{', OIDC_TOKEN_SECRET: SECRET })).toThrow(/^OIDC_TRUST must be JSON/);
    expect(env({ OIDC_TRUST: trust([{ ...RULES[0]!, claims: { ref: 'refs/heads/main', repository: '*' } }]), OIDC_TOKEN_SECRET: SECRET }))
      .toThrow(/^OIDC_TRUST\.rules\[0\]\.claims must pin who may push/);
    expect(env({ OIDC_TRUST: trust([{ ...RULES[0]!, claims: { ref: 'refs/heads/main', repository: 'acme/*' } }]), OIDC_TOKEN_SECRET: SECRET })).not.toThrow();
  });
});
