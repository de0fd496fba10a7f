/** The edge's request log, through the edge app with an injected log and clock. */
import { describe, expect, it } from 'vitest';
import { basic, edgeKit, manualClock } from '../../test-kit.ts';
import { TOKEN_ID_HEADER, tokenDigest } from '../../../shared/contract.ts';

const tokens = { 'tok-alice': { user: 'alice', scopes: ['read' as const] } };
const auth = { Authorization: basic('alice', 'tok-alice') };
const NAR = '/nar/0123456789abcdfghijklmnpqrsvwxyz-' + '1'.repeat(52) + '.nar';

/** A body that sends `chunks` of 1 KiB, then fails (the origin died) or ends. */
function originBody(chunks: number, then: 'fail' | 'end') {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (sent < chunks) {
        sent++;
        ctl.enqueue(new Uint8Array(1024));
      } else if (then === 'fail') ctl.error(new TypeError('terminated: other side closed'));
      else ctl.close();
    },
  });
}

describe('request log', () => {
  it('logs one line per request with method, path, status, user, token id, duration, bytes sent and which origin answered, and never a token', async () => {
    const clock = manualClock();
    const { app, logs, seen } = edgeKit({
      tokens,
      now: clock.now,
      origin: async () => {
        clock.advance(42);
        return new Response('0123456789', { headers: { 'content-length': '10' } });
      },
    });
    const res = await app.request('/abc.narinfo?q=1', { headers: auth });
    expect(logs).toEqual([]); // written when the body has left
    expect(await res.text()).toBe('0123456789');
    // The id `eris token list` shows: the first 12 hex digits of the token's SHA-256. The origin is told it too.
    const id = (await tokenDigest('tok-alice')).slice(0, 12);
    expect(seen[0]!.headers.get(TOKEN_ID_HEADER)).toBe(id);
    expect(JSON.stringify(logs)).not.toContain('tok-alice');
    expect(logs).toEqual([{ method: 'GET', path: '/abc.narinfo', status: 200, user: 'alice', token: id, ms: 42, bytes: 10, body: 'complete', origin: 'origin', asked: 1, tries: [{ origin: 'origin', result: 200, ms: 42 }] }]);
  });

  it('says why authentication failed, since a 401 looks like a miss to Nix', async () => {
    const { app, logs } = edgeKit({ tokens });
    const get = await app.request('/x.narinfo', { headers: { Authorization: basic('alice', 'tok-wrong') } });
    const text = await get.text();
    await app.request('/x.narinfo', { method: 'HEAD' });
    expect(logs).toEqual([
      { method: 'GET', path: '/x.narinfo', status: 401, user: null, token: null, ms: expect.any(Number), bytes: new TextEncoder().encode(text).length, body: 'complete', auth: 'unknown token' },
      { method: 'HEAD', path: '/x.narinfo', status: 401, user: null, token: null, ms: expect.any(Number), bytes: 0, body: 'none', auth: 'missing credentials' },
    ]);
    expect(JSON.stringify(logs)).not.toContain('tok-wrong');
  });

  it('logs requests refused before authentication too', async () => {
    const { app, logs } = edgeKit({ tokens });
    await (await app.request('http://edge.test/a//b')).text();
    expect(logs).toMatchObject([{ path: '/a//b', status: 400, user: null, body: 'complete' }]);
  });

  it('a NAR whose origin died mid-body is logged as cut by the origin, with the bytes that left and the length promised', async () => {
    const { app, logs } = edgeKit({ tokens, origin: async () => new Response(originBody(3, 'fail'), { headers: { 'content-length': String(64 * 1024) } }) });
    const res = await app.request(NAR, { headers: auth });
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(logs).toEqual([expect.objectContaining({ path: NAR, status: 200, bytes: 3072, length: 65536, body: 'cut-origin', error: expect.stringContaining('other side closed') })]);
  });

  it('a body that ends short of its Content-Length is a cut too, and the client sees it fail', async () => {
    const { app, logs } = edgeKit({ tokens, origin: async () => new Response(originBody(2, 'end'), { headers: { 'content-length': '4096' } }) });
    const res = await app.request(NAR, { headers: auth });
    await expect(res.arrayBuffer()).rejects.toThrow(/after 2048 of 4096 bytes/);
    expect(logs).toEqual([expect.objectContaining({ bytes: 2048, length: 4096, body: 'cut-origin' })]);
  });

  it('a client that went away mid-body is logged as cut by the client, and the origin\'s body is cancelled', async () => {
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull: (ctl) => ctl.enqueue(new Uint8Array(1024)),
      cancel: () => void (cancelled = true),
    });
    const { app, logs } = edgeKit({ tokens, origin: async () => new Response(endless, { headers: { 'content-length': String(1 << 20) } }) });
    const res = await app.request(NAR, { headers: auth });
    const reader = res.body!.getReader();
    for (let i = 0; i < 5; i++) await reader.read();
    await reader.cancel(new Error('client went away'));
    expect(cancelled).toBe(true);
    expect(logs).toEqual([expect.objectContaining({ bytes: 5120, length: 1 << 20, body: 'cut-client' })]);
  });

  it('a complete NAR: every byte counted', async () => {
    const { app, logs } = edgeKit({ tokens, origin: async () => new Response(originBody(64, 'end'), { headers: { 'content-length': String(64 * 1024) } }) });
    expect((await (await app.request(NAR, { headers: auth })).arrayBuffer()).byteLength).toBe(65536);
    expect(logs).toEqual([expect.objectContaining({ bytes: 65536, body: 'complete' })]);
    expect(logs[0]).not.toHaveProperty('length');
  });
});
