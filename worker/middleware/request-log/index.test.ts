/** The edge's request log, through the edge app with an injected log and clock. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit, manualClock } from '../../test-kit.ts';

const tokens = { 'tok-alice': { user: 'alice', scopes: ['read' as const] } };

describe('request log', () => {
  it('logs one line per request with method, path, status, user, duration, bytes and which origin answered, and never a token', async () => {
    const clock = manualClock();
    const { app, logs } = edgeKit({
      tokens,
      now: clock.now,
      origin: async () => {
        clock.advance(42);
        return new Response('0123456789', { headers: { 'content-length': '10' } });
      },
    });
    await app.request('/abc.narinfo?q=1', { headers: { Authorization: basic('alice', 'tok-alice') } });
    expect(logs).toEqual([{ method: 'GET', path: '/abc.narinfo', status: 200, user: 'alice', ms: 42, bytes: 10, origin: 'origin', asked: 1, tries: [{ origin: 'origin', result: 200, ms: 42 }] }]);
  });

  it('says why authentication failed, since a 401 looks like a miss to Nix', async () => {
    const { app, logs } = edgeKit({ tokens });
    await app.request('/x.narinfo', { headers: { Authorization: basic('alice', 'tok-wrong') } });
    await app.request('/x.narinfo', { method: 'HEAD' });
    expect(logs).toEqual([
      { method: 'GET', path: '/x.narinfo', status: 401, user: null, ms: expect.any(Number), bytes: null, auth: 'unknown token' },
      { method: 'HEAD', path: '/x.narinfo', status: 401, user: null, ms: expect.any(Number), bytes: null, auth: 'missing credentials' },
    ]);
    expect(JSON.stringify(logs)).not.toContain('tok-wrong');
  });

  it('logs requests refused before authentication too', async () => {
    const { app, logs } = edgeKit({ tokens });
    await app.request('http://edge.test/a//b');
    expect(logs).toMatchObject([{ path: '/a//b', status: 400, user: null }]);
  });
});
