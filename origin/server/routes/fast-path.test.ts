/**
 * The fast paths below Hono — routes/narinfo-fast.ts (a GET of a narinfo the store has) and
 * routes/nar-fast.ts (a plain GET of a small NAR) — answer exactly as the Hono app does (bytes,
 * headers, /metrics and usage counts under the same names, admission) and leave everything else to the app.
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
import { smallNarFastPath } from './nar-fast.ts';
import { SMALL_NAR_BYTES } from './nar.ts';
import { firstOf } from './fast-path.ts';

describe('fast paths', () => {
  let store: MemoryStore;
  let origin: ComposedOrigin;
  let server: Listening;
  /** Requests the fast paths answered, all of them (`answered`) and small NARs only (`nars`). */
  let answered = 0;
  let nars = 0;
  const logged: Record<string, unknown>[] = [];
  const hash = (name: string) => store.paths[name]!.hashPart;
  /** The NAR URL the narinfo advertises. */
  const narPath = (name: string) => `/nar/${hash(name)}-${store.paths[name]!.narHash.slice('sha256:'.length)}.nar`;

  beforeAll(async () => {
    store = createMemoryStore([
      { name: 'leaf', contents: 'leaf\n' },
      { name: 'top', contents: 'x'.repeat(3000), references: ['leaf', 'top'], deriver: `${'d'.repeat(32)}-top.drv` },
      { name: 'big', contents: Buffer.alloc(SMALL_NAR_BYTES, 7) },
      { name: 'lost', contents: 'files gone, row kept\n' },
    ]);
    store.gone.add(store.paths.lost!.storePath);
    const config = resolveConfig({ flags: { bind: '127.0.0.1:0', signKeyPaths: ['(in memory)'], edgeSecret: EDGE_SECRET }, env: {} });
    const log = { info: (e: Record<string, unknown>) => void logged.push(e), warn() {}, error() {} };
    origin = composeOrigin(config, { store, log, signers: [createSigner(generateKeyPair('eris-test-1').secret)] });
    await origin.ready;
    const narinfo = narinfoFastPath(origin.caches, origin.settings);
    const nar = smallNarFastPath(origin.caches, origin.settings);
    const countNars = async (req: IncomingMessage, res: ServerResponse) => (await nar(req, res)) && ++nars > 0;
    const fast = firstOf(narinfo, countNars);
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
  const viaApp = (path: string, headers: Record<string, string> = {}) => origin.app.request(path, { headers: { ...headers, 'x-eris-edge-secret': EDGE_SECRET } });
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

  it('answers a HEAD of a narinfo the store has with the GET\'s headers and no body, as the app does', async () => {
    const path = `/${hash('top')}.narinfo`;
    const before = answered;
    const [fast, app] = [await overHttp(path, { method: 'HEAD' }), await origin.app.request(path, { method: 'HEAD', headers: { 'x-eris-edge-secret': EDGE_SECRET } })];
    expect(answered).toBe(before + 1);
    expect(fast.status).toBe(200);
    expect(headerSet(fast)).toEqual(headerSet(app));
    expect(fast.headers.get('content-length')).toBe(String((await (await viaApp(path)).arrayBuffer()).byteLength));
    expect((await fast.arrayBuffer()).byteLength).toBe(0);
    // the connection is still good for the next request (no stray body bytes on it)
    expect((await overHttp(path)).status).toBe(200);
  });

  it('leaves every other request to the app, which answers as always', async () => {
    const before = answered;
    const top = hash('top');
    expect((await overHttp(`/${top}.narinfo`, {}, null)).status).toBe(403);
    expect((await overHttp(`/${top}.narinfo`, {}, EDGE_SECRET + 'x')).status).toBe(403);
    expect((await overHttp(`/nope/${top}.narinfo`)).status).toBe(404);
    expect((await overHttp(`/${top}.narinfo?x=1`)).status).toBe(200);
    expect((await overHttp(`/log/${top}.narinfo`)).status).toBe(400);
    expect((await overHttp(`/${top.slice(1)}.narinfo`)).status).toBe(400);
    expect((await overHttp(`/${top}.narinfo`, { method: 'HEAD' }, null)).status).toBe(403);
    expect((await overHttp(`/${'0'.repeat(32)}.narinfo`, { method: 'HEAD' }, null)).status).toBe(403);
    expect(answered).toBe(before);
  });

  it('answers a miss (GET and HEAD, bare and under the cache name) with the status, bytes and headers the app answers, counted as the app counts it', async () => {
    const metrics = async () => (await overHttp('/metrics')).text();
    const count = (text: string, line: RegExp) => Number(text.match(line)?.[1] ?? 0);
    const route = /^eris_requests_total\{route="narinfo",status="404"\} (\d+)$/m;
    const misses = /^eris_cache_requests_total\{cache="default",kind="narinfo_miss"\} (\d+)$/m;
    const timed = /^eris_narinfo_seconds_count\{result="miss"\} (\d+)$/m;
    const sent = /^eris_sent_bytes_total\{route="narinfo"\} (\d+)$/m;
    const m0 = await metrics();
    const before = answered;
    const absent = '0'.repeat(32);
    for (const path of [`/${absent}.narinfo`, `/default/${absent}.narinfo`]) {
      const [fast, app] = [await overHttp(path), await viaApp(path)];
      expect(fast.status).toBe(404);
      expect(app.status).toBe(404);
      expect(headerSet(fast)).toEqual(headerSet(app));
      expect(await fast.text()).toBe(await app.text());
      const [fastHead, appHead] = [await overHttp(path, { method: 'HEAD' }), await origin.app.request(path, { method: 'HEAD', headers: { 'x-eris-edge-secret': EDGE_SECRET } })];
      expect(fastHead.status).toBe(404);
      expect(headerSet(fastHead)).toEqual(headerSet(appHead));
      expect((await fastHead.arrayBuffer()).byteLength).toBe(0);
    }
    expect(answered).toBe(before + 4);
    // the connection is still good after a HEAD miss
    expect((await overHttp(`/${hash('top')}.narinfo`)).status).toBe(200);
    const m1 = await metrics();
    const line = (await (await viaApp(`/${absent}.narinfo`)).arrayBuffer()).byteLength;
    // 4 answered here, 4 by the app (2 GETs and 2 HEADs each); `line`'s request came after m1
    expect(count(m1, route) - count(m0, route)).toBe(8);
    expect(count(m1, misses) - count(m0, misses)).toBe(8);
    expect(count(m1, timed) - count(m0, timed)).toBe(8);
    // bytes: the 4 miss GETs' lines (none for the HEADs), and the hit's narinfo after the HEAD miss
    const top = (await (await viaApp(`/${hash('top')}.narinfo`)).arrayBuffer()).byteLength;
    expect(count(m1, sent) - count(m0, sent)).toBe(4 * line + top);
  });

  it('leaves a narinfo to the app while the store DB is busy (the app waits for it, then answers 503)', async () => {
    const before = answered;
    store.busy = true;
    try {
      expect((await overHttp(`/${hash('top')}.narinfo`)).status).toBe(503);
    } finally {
      store.busy = false;
    }
    expect(answered).toBe(before);
    expect((await overHttp(`/${hash('top')}.narinfo`)).status).toBe(200);
    expect(answered).toBe(before + 1);
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
    await (await overHttp(`/${hash('top')}.narinfo`, { method: 'HEAD' })).arrayBuffer();
    await (await origin.app.request(`/${hash('top')}.narinfo`, { method: 'HEAD', headers: { 'x-eris-edge-secret': EDGE_SECRET } })).arrayBuffer();
    expect(answered).toBe(before + 3);
    const m1 = await metrics();
    expect(count(m1, route) - count(m0, route)).toBe(5);
    expect(count(m1, hits) - count(m0, hits)).toBe(5);
    // bytes: the three GETs' bodies, nothing for either HEAD
    const sent = /^eris_sent_bytes_total\{route="narinfo"\} (\d+)$/m;
    const top = (await (await viaApp(`/${hash('top')}.narinfo`)).arrayBuffer()).byteLength;
    const leaf = (await (await viaApp(`/${hash('leaf')}.narinfo`)).arrayBuffer()).byteLength;
    expect(count(m1, sent) - count(m0, sent)).toBe(2 * top + leaf);
  });

  it('answers a small NAR with the bytes, headers and status the app answers, bare and under the cache name', async () => {
    for (const [name, path] of [['top', narPath('top')], ['leaf', narPath('leaf')], ['top', `/default${narPath('top')}`]] as const) {
      const before = nars;
      const [fast, app] = [await overHttp(path), await viaApp(path)];
      expect(nars).toBe(before + 1);
      expect(fast.status).toBe(200);
      expect(headerSet(fast)).toEqual(headerSet(app));
      const body = new Uint8Array(await fast.arrayBuffer());
      expect(body).toEqual(new Uint8Array(await app.arrayBuffer()));
      expect(body.length).toBe(store.paths[name]!.narSize);
    }
  });

  it('leaves every other NAR request to the app, which answers as always', async () => {
    const before = answered;
    const top = narPath('top');
    expect((await overHttp(top, {}, null)).status).toBe(403);
    expect((await overHttp(top, { method: 'HEAD' })).status).toBe(200);
    const range = await overHttp(top, { headers: { range: 'bytes=0-9' } });
    expect([range.status, (await range.arrayBuffer()).byteLength]).toEqual([206, 10]);
    expect((await overHttp(top, { headers: { 'if-range': '"other"' } })).status).toBe(200);
    expect((await overHttp(top.replace(hash('top'), hash('leaf')))).status).toBe(404); // another path's NAR hash
    expect((await overHttp(top.replace(hash('top'), '0'.repeat(32)))).status).toBe(404);
    expect((await overHttp(`/nope${top}`)).status).toBe(404);
    expect((await overHttp(`${top}.xz`)).status).toBe(404); // this origin serves no xz
    const big = await overHttp(narPath('big')); // NarSize above SMALL_NAR_BYTES: streamed by the app
    expect([big.status, (await big.arrayBuffer()).byteLength]).toEqual([200, store.paths.big!.narSize]);
    expect((await overHttp(narPath('lost'))).status).toBe(500); // registered, files missing: the app's 500
    const harmonia = `/nar/${store.paths.top!.narHash.slice('sha256:'.length)}.nar?hash=${hash('top')}`;
    expect((await overHttp(harmonia)).status).toBe(200);
    expect(answered).toBe(before);
  });

  it("counts small NARs in /metrics, usage and admission as the app does, and logs them", async () => {
    const metrics = async () => (await overHttp('/metrics')).text();
    const count = (text: string, line: RegExp) => Number(text.match(line)?.[1] ?? 0);
    const route = /^eris_requests_total\{route="nar",status="200"\} (\d+)$/m;
    const sent = /^eris_sent_bytes_total\{route="nar"\} (\d+)$/m;
    const streams = /^eris_nar_stream_seconds_count (\d+)$/m;
    const m0 = await metrics();
    const before = nars;
    logged.length = 0;
    await (await overHttp(narPath('top'))).arrayBuffer();
    await (await overHttp(`/default${narPath('leaf')}`)).arrayBuffer();
    await (await viaApp(narPath('top'))).arrayBuffer();
    expect(nars).toBe(before + 2);
    const m1 = await metrics();
    expect(count(m1, route) - count(m0, route)).toBe(3);
    expect(count(m1, sent) - count(m0, sent)).toBe(2 * store.paths.top!.narSize + store.paths.leaf!.narSize);
    expect(count(m1, streams) - count(m0, streams)).toBe(3);
    expect(origin.deps.admission!.narStreams).toBe(0);
    const sentLines = logged.filter((e) => e.msg === 'nar sent').map((e) => [e.path, e.bytes]);
    expect(sentLines).toEqual([[store.paths.top!.storePath, store.paths.top!.narSize], [store.paths.leaf!.storePath, store.paths.leaf!.narSize], [store.paths.top!.storePath, store.paths.top!.narSize]]);
  });
});
