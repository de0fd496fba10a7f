/** The edge-secret check in an app: only requests with the exact secret reach a route; a refusal is a 403 of one line, logged. */
import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import type { OriginDeps, OriginEnv } from '../../types.ts';
import { EDGE_SECRET_HEADER } from '../../../../shared/contract.ts';
import { edgeAuth, sameSecret } from './index.ts';

const SECRET = 'an-edge-secret-of-some-length';

function app() {
  const warnings: Record<string, unknown>[] = [];
  const a = new Hono<OriginEnv>();
  a.use(async (c, next) => {
    c.set('deps', { log: { info() {}, error() {}, warn: (o: Record<string, unknown>) => warnings.push(o) } } as unknown as OriginDeps);
    await next();
  });
  a.use(edgeAuth(SECRET));
  a.get('/nix-cache-info', (c) => c.text('StoreDir: /nix/store\n'));
  return { a, warnings };
}

describe('edgeAuth', () => {
  it('lets the exact secret through and refuses a missing, wrong, longer or shorter one with 403', async () => {
    const { a, warnings } = app();
    expect((await a.request('/nix-cache-info', { headers: { [EDGE_SECRET_HEADER]: SECRET } })).status).toBe(200);
    for (const given of [undefined, 'wrong', SECRET + 'x', SECRET.slice(0, -1), SECRET.replace(/.$/, 'X')]) {
      const res = await a.request('/nix-cache-info', { headers: given === undefined ? {} : { [EDGE_SECRET_HEADER]: given } });
      expect({ given, status: res.status, body: await res.text() }).toEqual({ given, status: 403, body: 'forbidden: requests must come through the eris edge\n' });
    }
    expect(warnings).toHaveLength(5);
    expect(warnings[0]).toMatchObject({ msg: 'request without a valid edge secret', path: '/nix-cache-info', status: 403 });
    expect(JSON.stringify(warnings)).not.toContain(SECRET);
  });

  it('refuses to start with a secret shorter than the minimum', () => {
    expect(() => edgeAuth('short')).toThrow(/at least 16 characters/);
  });

  it('compares secrets character by character, equal lengths only', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abd', 'abc')).toBe(false);
    expect(sameSecret('ab', 'abc')).toBe(false);
  });
});
