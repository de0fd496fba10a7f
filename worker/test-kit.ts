/**
 * One way for the Worker's unit tests to build an edge: the real composition
 * root (workerDeps, so config parsing, the token store over KV, the origin
 * client and its breaker are all the production ones), with the origin, the
 * TOKENS namespace, the log and the clock stood in for. Not imported by the
 * Worker itself.
 */
import { createWorkerApp } from './app.ts';
import { workerDeps, type WorkerRuntime } from './index.ts';
import type { Env } from './env.ts';
import { tokenDigest, tokenKey, type TokenRecord } from '../shared/contract.ts';

export const TEST_SECRET = 'edge-secret-for-tests-0123';

/** Token → record (created/expires may be left out). */
export type TestTokens = Record<string, Pick<TokenRecord, 'user' | 'scopes'> & Partial<TokenRecord>>;

/** A TOKENS namespace holding these tokens as `eris token add` writes them. */
export function memoryKv(tokens: TestTokens): KVNamespace {
  const entries = Promise.all(
    Object.entries(tokens).map(async ([t, r]) => [tokenKey(await tokenDigest(t)), JSON.stringify({ created: '', expires: null, ...r })] as const),
  ).then((e) => new Map(e));
  return { get: async (key: string) => (await entries).get(key) ?? null } as unknown as KVNamespace;
}

/** A clock that moves only when told. */
export function manualClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

export interface EdgeKitOptions extends Omit<WorkerRuntime, 'fetchImpl'> {
  env?: Partial<Env>;
  tokens?: TestTokens;
  /** The origin; by default a nix-cache-info answer. */
  origin?: (req: Request) => Promise<Response>;
}

export function edgeKit(o: EdgeKitOptions = {}) {
  const seen: Request[] = [];
  const logs: Record<string, unknown>[] = [];
  const env = { ORIGIN_URL: 'http://origin.test', EDGE_SECRET: TEST_SECRET, TOKENS: memoryKv(o.tokens ?? {}), ...o.env } as Env;
  const deps = workerDeps(env, {
    log: o.log ?? ((l) => logs.push(l)),
    now: o.now,
    authLimiter: o.authLimiter,
    oidcFetch: o.oidcFetch,
    fetchImpl: async (req) => {
      seen.push(req);
      return o.origin ? o.origin(req) : new Response('StoreDir: /nix/store\n', { status: 200, headers: { 'content-type': 'text/x-nix-cache-info' } });
    },
  });
  const app = createWorkerApp(deps);
  /** Log lines other than the per-request line. */
  const messages = () => logs.filter((l) => typeof l.msg === 'string');
  return { app, env, deps, seen, logs, messages };
}

export const basic = (user: string, token: string) => 'Basic ' + btoa(`${user}:${token}`);

/** Never answers, but honours the abort signal (like fetch). */
export const hang = (req: Request) => new Promise<Response>((_, reject) => req.signal.addEventListener('abort', () => reject(req.signal.reason)));
