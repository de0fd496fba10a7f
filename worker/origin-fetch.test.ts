/**
 * The two documented ways to reach the origin, wired from the Worker
 * environment: a Workers VPC service binding, or fetch() to a tunnel hostname
 * behind Cloudflare Access (service token headers on every request).
 * The VPC binding and Access cannot run offline; they are stood in for here.
 */
import { describe, expect, it } from 'vitest';
import { createWorkerApp } from './app.ts';
import { workerDeps } from './index.ts';
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
    const app = createWorkerApp({ ...workerDeps(await env({ ORIGIN: binding as unknown as Fetcher }), unused), log: () => {} });
    expect((await app.request('/x.narinfo', { headers: auth })).status).toBe(200);
    expect(seen[0]!.url).toBe('http://origin.internal:8788/x.narinfo');
    expect(seen[0]!.headers.get('x-eris-edge-secret')).toBe(SECRET);
    expect(seen[0]!.headers.get('cf-access-client-id')).toBeNull();
    expect(seen[0]!.cache).toBe('no-store');
  });

  it('sends the Access service token on every origin request, the landing page included', async () => {
    const seen: Request[] = [];
    const fetchImpl = async (r: Request) => (seen.push(r), new Response('eris-1:' + 'A'.repeat(43) + '=\n'));
    const app = createWorkerApp({ ...workerDeps(await env({ ACCESS_CLIENT_ID: 'id.access', ACCESS_CLIENT_SECRET: 'access-secret' }), fetchImpl), log: () => {} });
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
