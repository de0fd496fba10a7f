/**
 * The narinfo fast path (routes/narinfo-fast.ts) answers a GET of a narinfo
 * the store has exactly as the Hono app does — bytes, headers, /metrics and
 * usage counts under the same names — and leaves everything else to the app.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSigner, generateKeyPair } from '../../../shared/signing.ts';
import { createMemoryStore, type MemoryStore } from '../../../test/helpers/memory-store.ts';
import { EDGE_SECRET } from '../../../test/helpers/origin.ts';
import { resolveConfig } from '../../config/index.ts';
import { composeOrigin, type ComposedOrigin } from '../compose.ts';
import { listen, type Listening } from '../listen.ts';
import { narinfoFastPath } from './narinfo-fast.ts';

describe('narinfo fast path', () => {
  let store: MemoryStore;
  let origin: ComposedOrigin;
  let server: Listening;
  let answered = 0;
  const hash = (name: string) => store.paths[name]!.hashPart;

  beforeAll(async () => {
    store = createMemoryStore([
      { name: 'leaf', contents: 'leaf\n' },
      { name: 'top', contents: 'x'.repeat(3000), references: ['leaf', 'top'], deriver: `${'d'.repeat(32)}-top.drv` },
    ]);
    const config = resolveConfig({ flags: { bind: '127.0.0.1:0', signKeyPaths: ['(in memory)'], edgeSecret: EDGE_SECRET }, env: {} });
    origin = composeOrigin(config, { store, signers: [createSigner(generateKeyPair('eris-test-1').secret)] });
    await origin.ready;
    const fast = narinfoFastPath(origin.caches, origin.settings);
    const counting = async (req: IncomingMessage, res: ServerResponse) => {
      const a = await fast(req, res);
      if (a) answered++;
      return a;
    };
    server = await listen(origin.app.fetch, { host: '127.0.0.1', port: 0 }, counting);
  });
  afterAll(async () => {
    await server?.close();
    origin?.close();
  });

  const overHttp = (path: string, init: RequestInit = {}, secret: string | null = EDGE_SECRET) => {
    const headers = new Headers(init.headers);
    if (secret !== null) headers.set('x-eris-edge-secret', secret);
    return fetch(server.url + path, { ...init, headers, signal: AbortSignal.timeout(10_000) });
  };
  const viaApp = (path: string) => origin.app.request(path, { headers: { 'x-eris-edge-secret': EDGE_SECRET } });
  const headerSet = (res: Response) => [...res.headers].filter(([k]) => !['date', 'connection', 'keep-alive'].includes(k));

  it('answers a narinfo the store has with the bytes and headers the app answers, bare and under the cache name', async () => {
    for (const path of [`/${hash('top')}.narinfo`, `/${hash('leaf')}.narinfo`, `/default/${hash('top')}.narinfo`]) {
      const before = answered;
      const [fast, app] = [await overHttp(path), await viaApp(path)];
      expect(answered).toBe(before + 1);
      expect(fast.status).toBe(200);
      expect(headerSet(fast)).toEqual(headerSet(app));
      expect(new Uint8Array(await fast.arrayBuffer())).toEqual(new Uint8Array(await app.arrayBuffer()));
    }
  });

  it('leaves every other request to the app, which answers as always', async () => {
    const before = answered;
    const top = hash('top');
    expect((await overHttp(`/${top}.narinfo`, {}, null)).status).toBe(403);
    expect((await overHttp(`/${top}.narinfo`, {}, EDGE_SECRET + 'x')).status).toBe(403);
    expect((await overHttp(`/${'0'.repeat(32)}.narinfo`)).status).toBe(404);
    expect((await overHttp(`/nope/${top}.narinfo`)).status).toBe(404);
    expect((await overHttp(`/${top}.narinfo?x=1`)).status).toBe(200);
    expect((await overHttp(`/log/${top}.narinfo`)).status).toBe(400);
    expect((await overHttp(`/${top.slice(1)}.narinfo`)).status).toBe(400);
    const head = await overHttp(`/${top}.narinfo`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(100);
    expect(answered).toBe(before);
  });

  it('counts what it answers in /metrics and usage under the app\'s route and cache names', async () => {
    const metrics = async () => (await overHttp('/metrics')).text();
    const count = (text: string, line: RegExp) => Number(text.match(line)?.[1] ?? 0);
    const route = /^eris_requests_total\{route="narinfo",status="200"\} (\d+)$/m;
    const hits = /^eris_cache_requests_total\{cache="default",kind="narinfo_hit"\} (\d+)$/m;
    const m0 = await metrics();
    const before = answered;
    await (await overHttp(`/${hash('top')}.narinfo`)).arrayBuffer();
    await (await overHttp(`/${hash('leaf')}.narinfo`)).arrayBuffer();
    await (await viaApp(`/${hash('top')}.narinfo`)).arrayBuffer();
    expect(answered).toBe(before + 2);
    const m1 = await metrics();
    expect(count(m1, route) - count(m0, route)).toBe(3);
    expect(count(m1, hits) - count(m0, hits)).toBe(3);
  });
});
