/**
 * The edge's own CPU time per request, measured in this Node process (same
 * V8 as workerd): the real Worker app (workerDeps, so config, the token
 * store with its cache, auth, path checks, the request log line, the proxy
 * and its header filtering) against the do-nothing Worker
 * (passthrough-worker.js), both with an origin that answers at once from
 * memory. This is what Cloudflare bills as Worker CPU time — I/O waits are
 * not counted there either — and, unlike wrangler dev's figures, it holds
 * none of wrangler's own proxying.
 */
import { tokenDigest, tokenKey } from '../../shared/contract.ts';
// @ts-expect-error: plain JS module without types
import passthrough from './passthrough-worker.js';

export interface EdgeCpu {
  requests: number;
  /** CPU µs per request, by app and request kind. */
  us: { edge: { narinfo: number; nar: number }; edgeNoTokenCache: { narinfo: number }; doNothing: { narinfo: number; nar: number } };
}

const NARINFO = 'StorePath: /nix/store/' + 'a'.repeat(32) + '-x\nURL: nar/x.nar\nCompression: none\nNarHash: sha256:' + '0'.repeat(52) + '\nNarSize: 1000\nReferences: \nSig: k:' + 'x'.repeat(88) + '\n';
const NAR = new Uint8Array(64 * 1024);

function answer(path: string): Response {
  if (path.startsWith('/nar/')) return new Response(NAR, { status: 200, headers: { 'content-type': 'application/x-nix-nar', 'content-length': String(NAR.byteLength) } });
  return new Response(NARINFO, { status: 200, headers: { 'content-type': 'text/x-nix-narinfo', 'content-length': String(NARINFO.length), 'cache-control': 'private, no-store' } });
}

async function cpuPerRequest(n: number, one: (i: number) => Promise<void>): Promise<number> {
  for (let i = 0; i < Math.min(2000, n); i++) await one(i); // warm-up: JIT, caches
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await one(i);
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / n;
}

/** The Worker's modules are typed against the Workers runtime, not Node: loaded by URL, typed here as far as used. */
type App = { fetch(req: Request, env: unknown, ctx: unknown): Promise<Response> };
type WorkerModules = {
  index: { workerDeps(env: unknown, runtime: unknown): unknown };
  app: { createWorkerApp(deps: unknown): App };
};
async function loadWorker(): Promise<WorkerModules> {
  const url = (p: string) => new URL(p, import.meta.url).href;
  return { index: await import(url('../../worker/index.ts')), app: await import(url('../../worker/app.ts')) };
}

export async function measureEdgeCpu(n = 20_000): Promise<EdgeCpu> {
  const { index: { workerDeps }, app: { createWorkerApp } } = await loadWorker();
  const token = 'eris_' + 'b'.repeat(43);
  const record = JSON.stringify({ user: 'bench', scopes: ['read'], created: new Date().toISOString(), expires: null });
  const key = tokenKey(await tokenDigest(token));
  // Sink for the log lines: JSON.stringify as consoleLog does, without the console.
  let logged = 0;
  const log = (line: Record<string, unknown>) => void (logged += JSON.stringify(line).length);
  const kv = { get: async (k: string) => (k === key ? record : null) };
  const fetchImpl = async (req: Request) => answer(new URL(req.url).pathname);
  const build = (vars: Record<string, string> = {}) => createWorkerApp(workerDeps({ ORIGIN_URL: 'http://origin.bench', EDGE_SECRET: 'bench-edge-secret-0123456789', TOKENS: kv, ...vars }, { fetchImpl, log }));
  const headers = { Authorization: 'Basic ' + btoa(`bench:${token}`) };
  const drain = async (res: Response) => {
    if (res.status !== 200) throw new Error(`edge CPU run: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  const narinfo = (i: number) => `http://edge.bench/${(i % 300).toString(32).padStart(32, '0')}.narinfo`;
  const narUrl = 'http://edge.bench/nar/' + 'a'.repeat(32) + '.nar';
  const edge = build();
  const uncached = build({ TOKEN_CACHE_SECONDS: '0' });
  const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} };
  const env = {};
  const us = {
    edge: {
      narinfo: await cpuPerRequest(n, async (i) => drain(await edge.fetch(new Request(narinfo(i), { headers }), env, ctx))),
      nar: await cpuPerRequest(n / 4, async () => drain(await edge.fetch(new Request(narUrl, { headers }), env, ctx))),
    },
    edgeNoTokenCache: {
      narinfo: await cpuPerRequest(n, async (i) => drain(await uncached.fetch(new Request(narinfo(i), { headers }), env, ctx))),
    },
    doNothing: { narinfo: 0, nar: 0 },
  };
  const realFetch = globalThis.fetch;
  globalThis.fetch = (async (input: string | URL | Request) => answer(new URL(input instanceof Request ? input.url : input).pathname)) as typeof fetch;
  const origLog = console.log;
  console.log = (s: string) => void (logged += s.length);
  try {
    const ptEnv = { UPSTREAM: 'http://origin.bench', EDGE_SECRET: 'bench-edge-secret-0123456789' };
    us.doNothing.narinfo = await cpuPerRequest(n, async (i) => drain(await passthrough.fetch(new Request(narinfo(i)), ptEnv)));
    us.doNothing.nar = await cpuPerRequest(n / 4, async () => drain(await passthrough.fetch(new Request(narUrl), ptEnv)));
  } finally {
    globalThis.fetch = realFetch;
    console.log = origLog;
  }
  if (logged === 0) throw new Error('edge CPU run: nothing was logged');
  return { requests: n, us };
}
