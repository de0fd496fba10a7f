/**
 * Requests answered below Hono, straight on Node's request and response (routes/narinfo-fast.ts,
 * routes/nar-fast.ts): the common part. A fast path answers only the plainest form of its route —
 * `/<rest>` (the default cache) or `/<cache>/<rest>`, the edge secret right — and hands anything
 * else to the Hono app, which answers it as always.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EDGE_SECRET_HEADER, TOKEN_ID_HEADER, USER_HEADER } from '../../../shared/contract.ts';
import { isCacheName } from '../../../shared/caches.ts';
import { tokenIdOf } from '../../usage/request.ts';
import { sameSecret } from '../middleware/edge-auth/index.ts';
import { CACHE_PREFIX } from '../app.ts';
import type { CacheContext, CacheRegistry } from '../../caches/registry.ts';

/**
 * true: answered; false: the caller hands the request to the app. A path that can decide without waiting
 * answers synchronously (no promise, no microtask per request: the narinfo path under load).
 */
export type FastPath = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/** Who asked and for which cache, as the app's cache selector and usage helpers would say. */
export interface FastTarget {
  ctx: CacheContext;
  /** The app's route pattern (for /metrics): `route`, or `/:cache` + `route` under a cache name. */
  route: string;
  user: string;
  token: string;
}

/**
 * The cache and route a URL addresses whose route part starts at `restAt` (just after a `/`), when the
 * request carries the edge secret and the caches are ready; undefined when the app should answer.
 */
export function fastTarget(caches: CacheRegistry, ready: () => boolean, secret: string, req: IncomingMessage, restAt: number, route: string): FastTarget | undefined {
  const url = req.url!;
  if (!ready() || restAt < 1 || url.charCodeAt(restAt - 1) !== 47 /* / */) return undefined;
  let ctx;
  if (restAt === 1) ctx = caches.default;
  else {
    const name = url.slice(1, restAt - 1);
    if (!isCacheName(name)) return undefined;
    ctx = caches.get(name);
    route = CACHE_PREFIX + route;
  }
  if (!ctx) return undefined;
  const given = req.headers[EDGE_SECRET_HEADER];
  if (typeof given !== 'string' || !sameSecret(given, secret)) return undefined;
  const user = req.headers[USER_HEADER];
  return { ctx, route, user: typeof user === 'string' ? user : '', token: tokenIdOf(req.headers[TOKEN_ID_HEADER]) };
}

/** The target a URL's route part (from `restAt`) addresses, or undefined: fastTarget for one request. */
export type TargetOf = (restAt: number, route: string) => FastTarget | undefined;

/**
 * A fast path for plain GETs (and HEADs, with `head`) of URLs ending in `suffix`; `answer` gets the URL and
 * the request's TargetOf, and every other request is left to the app at once.
 */
export function fastGet(caches: CacheRegistry, settings: { edgeSecret: string }, suffix: string,
  answer: (req: IncomingMessage, res: ServerResponse, url: string, target: TargetOf) => boolean | Promise<boolean>, head = false): FastPath {
  const ready = readiness(caches);
  return (req, res) => {
    const url = req.url;
    if ((req.method !== 'GET' && !(head && req.method === 'HEAD')) || url === undefined || !url.endsWith(suffix)) return false;
    return answer(req, res, url, (restAt, route) => fastTarget(caches, ready, settings.edgeSecret, req, restAt, route));
  };
}

/** Whether the registry has computed every cache's published set (until then the app waits for it). */
function readiness(caches: CacheRegistry): () => boolean {
  let ready = false;
  void caches.ready.then(() => (ready = true), () => {});
  return () => ready;
}

/** One fast path made of several: the first that answers wins (synchronously while each decides synchronously). */
export function firstOf(...paths: FastPath[]): FastPath {
  const from = (i: number, req: IncomingMessage, res: ServerResponse): boolean | Promise<boolean> => {
    for (; i < paths.length; i++) {
      const answered = paths[i]!(req, res);
      if (answered === true) return true;
      if (answered !== false) return answered.then((yes) => yes || from(i + 1, req, res));
    }
    return false;
  };
  return (req, res) => from(0, req, res);
}
