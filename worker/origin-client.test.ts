/**
 * The origin client: the two documented ways to reach the origin, wired from
 * the Worker environment (a Workers VPC service binding, or fetch() to a
 * tunnel hostname behind Cloudflare Access, service token headers on every
 * request), and what every request it sends carries. The VPC binding and
 * Access cannot run offline; they are stood in for here.
 */
import { describe, expect, it } from 'vitest';
import { createWorkerApp } from './app.ts';
import { workerDeps } from './index.ts';
import { createOriginClient } from './origin-client.ts';
import type { Env } from './env.ts';
import { tokenDigest, tokenKey } from '../shared/contract.ts';

const SECRET = 'edge-secret-for-origin-fetch';
const TOKEN = 'tok-origin-fetch';

async function env(extra: Partial<Env>): Promise<Env> {
  const key = tokenKey(await tokenDigest(TOKEN));
  const kv = { get: async (k: string) => (k === key ? JSON.stringify({ user: 'u', scopes: ['read'] }) : null) };
  return { ORIGIN_URL: 'http://origin.internal:8788', EDGE_SECRET: SECRET, TOKENS: kv as unknown as KVNamespace, ...extra } as Env;
}

const auth = { Authorization: `Bearer ${TOKEN}` };

describe('reaching the origin', () => {
  it('goes through the VPC service binding when ORIGIN is bound, with the edge secret and no-store', async () => {
    const seen: Request[] = [];
    const binding = { fetch: async (r: Request) => (seen.push(r), new Response('ok')) };
    const unused = async () => {
      throw new Error('global fetch must not be used with a binding');
    };
    const app = createWorkerApp(workerDeps(await env({ ORIGIN: binding as unknown as Fetcher }), { fetchImpl: unused, log: () => {} }));
    expect((await app.request('/x.narinfo', { headers: auth })).status).toBe(200);
    expect(seen[0]!.url).toBe('http://origin.internal:8788/x.narinfo');
    expect(seen[0]!.headers.get('x-eris-edge-secret')).toBe(SECRET);
    expect(seen[0]!.headers.get('cf-access-client-id')).toBeNull();
    expect(seen[0]!.cache).toBe('no-store');
  });

  it('sends the Access service token on every origin request, the landing page included', async () => {
    const seen: Request[] = [];
    const fetchImpl = async (r: Request) => (seen.push(r), new Response('eris-1:' + 'A'.repeat(43) + '=\n'));
    const app = createWorkerApp(workerDeps(await env({ ACCESS_CLIENT_ID: 'id.access', ACCESS_CLIENT_SECRET: 'access-secret' }), { fetchImpl, log: () => {} }));
    await app.request('/x.narinfo', { headers: auth });
    await app.request('/');
    expect(seen).toHaveLength(2);
    for (const r of seen) {
      expect(r.headers.get('cf-access-client-id')).toBe('id.access');
      expect(r.headers.get('cf-access-client-secret')).toBe('access-secret');
      expect(r.headers.get('x-eris-edge-secret')).toBe(SECRET);
      expect(r.cache).toBe('no-store');
    }
  });

  it('refuses half an Access service token', async () => {
    expect(() => workerDeps({ ORIGIN_URL: 'http://o', EDGE_SECRET: SECRET, ACCESS_CLIENT_ID: 'x' } as Env)).toThrow(/ACCESS_CLIENT_ID and ACCESS_CLIENT_SECRET/);
  });
});

describe('the origin client', () => {
  const client = (transport: (r: Request) => Promise<Response>, logs: Record<string, unknown>[] = []) =>
    createOriginClient({ id: 'o1', url: 'http://o1.test/prefix', edgeSecret: SECRET, transport, log: (l) => logs.push(l), now: Date.now, breaker: { threshold: 5, cooldownMs: 1000, trialTimeoutMs: 5000 } });

  it('sends the path unchanged under the origin URL, with the secret and user, manual redirects and no-store', async () => {
    const seen: Request[] = [];
    const r = await client(async (req) => (seen.push(req), new Response('x')) ).send({ path: '/team/abc.narinfo?x=1', user: 'alice', timeoutMs: 1000, headers: new Headers({ range: 'bytes=0-1' }) });
    expect(r.kind).toBe('answer');
    expect(seen[0]!.url).toBe('http://o1.test/prefix/team/abc.narinfo?x=1');
    expect(seen[0]!.headers.get('x-eris-edge-secret')).toBe(SECRET);
    expect(seen[0]!.headers.get('x-eris-user')).toBe('alice');
    expect(seen[0]!.headers.get('range')).toBe('bytes=0-1');
    expect(seen[0]!.redirect).toBe('manual');
    expect(seen[0]!.cache).toBe('no-store');
  });

  it('gives up within the budget even when the transport ignores the abort signal', async () => {
    const started = Date.now();
    const r = await client(() => new Promise(() => {})).send({ path: '/x', timeoutMs: 150 });
    expect(r).toMatchObject({ kind: 'timeout', budgetMs: 150 });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('classifies refusals and gateway answers, cancelling their bodies, and logs transport failures once', async () => {
    const logs: Record<string, unknown>[] = [];
    expect(await client(async () => new Response('no', { status: 403 }), logs).send({ path: '/x', timeoutMs: 1000 })).toMatchObject({ kind: 'refused', status: 403 });
    expect(await client(async () => new Response('<html>', { status: 530 }), logs).send({ path: '/x', timeoutMs: 1000 })).toMatchObject({ kind: 'gateway', status: 530 });
    expect(await client(async () => Promise.reject(new TypeError('ECONNREFUSED')), logs).send({ path: '/x', timeoutMs: 1000 })).toMatchObject({ kind: 'unreachable' });
    expect(await client(async () => new Response('gone', { status: 404 }), logs).send({ path: '/x', timeoutMs: 1000 })).toMatchObject({ kind: 'answer' });
    expect(logs.map((l) => [l.msg, l.origin])).toEqual([
      ['origin refused the edge secret; check EDGE_SECRET on both sides', 'o1'],
      ['gateway could not reach the origin', 'o1'],
      ['origin unreachable', 'o1'],
    ]);
  });
});
