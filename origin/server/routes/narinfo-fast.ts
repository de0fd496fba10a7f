/**
 * The hot path, below Hono: a GET of a narinfo the store has, answered
 * straight on Node's request and response. A profile under load put Hono and
 * its Node adapter (a fetch Request and Context per request, four middleware
 * frames, the Response round trip) at about as much CPU per narinfo as all of
 * Node's own HTTP work; plain node:http answers the same bytes at about
 * nginx's cost. Anything else — another method or path, a query, a missing
 * or wrong edge secret, an unknown cache, a miss, a store error — is not
 * answered here but handed to the Hono app, which answers it as always. What
 * is answered here is what the app would answer: the same bytes (the same
 * rendered-narinfo cache), the same headers as respond.ts's send(), the same
 * /metrics and usage counts under the same route names.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isHashPart } from '../../../shared/store-path.ts';
import { USER_HEADER, EDGE_SECRET_HEADER, NO_STORE, CONTENT_TYPE, TOKEN_ID_HEADER } from '../../../shared/contract.ts';
import { tokenIdOf } from '../../usage/request.ts';
import { isCacheName } from '../../../shared/caches.ts';
import { sameSecret } from '../middleware/edge-auth/index.ts';
import { NARINFO_ROUTE, CACHE_PREFIX } from '../app.ts';
import type { CacheRegistry } from '../../caches/registry.ts';
import type { AppSettings } from '../types.ts';
import { narInfoBody } from './narinfo.ts';

/** true: answered; false: the caller hands the request to the app. */
export type FastPath = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const SUFFIX = '.narinfo';
const HASH = 32;
const NAMED_ROUTE = CACHE_PREFIX + NARINFO_ROUTE;

export function narinfoFastPath(caches: CacheRegistry, settings: Pick<AppSettings, 'edgeSecret'>): FastPath {
  let ready = false;
  void caches.ready.then(() => (ready = true), () => {});
  const secret = settings.edgeSecret;
  return async function fastNarinfo(req, res) {
    const url = req.url;
    if (req.method !== 'GET' || !ready || url === undefined || !url.endsWith(SUFFIX)) return false;
    // `/<hash>.narinfo` or `/<cache>/<hash>.narinfo`, nothing else (no query, no dot segments, no encoding).
    const hashAt = url.length - SUFFIX.length - HASH;
    if (hashAt < 1 || url.charCodeAt(hashAt - 1) !== 47 /* / */) return false;
    const hashPart = url.slice(hashAt, hashAt + HASH);
    if (!isHashPart(hashPart)) return false;
    let ctx;
    let route;
    if (hashAt === 1) {
      ctx = caches.default;
      route = NARINFO_ROUTE;
    } else {
      const name = url.slice(1, hashAt - 1);
      if (!isCacheName(name)) return false;
      ctx = caches.get(name);
      route = NAMED_ROUTE;
    }
    if (!ctx) return false;
    const given = req.headers[EDGE_SECRET_HEADER];
    if (typeof given !== 'string' || !sameSecret(given, secret)) return false;
    const started = performance.now();
    let info;
    try {
      info = await ctx.deps.store.lookup(hashPart);
    } catch {
      return false; // busy or broken store: the app answers 503/500
    }
    if (!info) return false; // the app answers (and counts) the 404
    const body = narInfoBody(info, ctx.deps, ctx.settings);
    const { metrics, usage } = ctx.deps;
    metrics.request(route, 200);
    metrics.sent(route, body.byteLength);
    const user = req.headers[USER_HEADER];
    usage?.narinfo(typeof user === 'string' ? user : '', ctx.name, true, tokenIdOf(req.headers[TOKEN_ID_HEADER]));
    res.writeHead(200, { 'Content-Type': CONTENT_TYPE.narinfo, 'Content-Length': String(body.byteLength), 'Cache-Control': NO_STORE });
    res.end(body);
    metrics.narinfo((performance.now() - started) / 1000, true);
    return true;
  };
}
