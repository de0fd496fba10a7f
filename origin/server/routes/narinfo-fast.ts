/**
 * The hot path, below Hono: a GET (or HEAD) of a narinfo, the store's or a miss, answered
 * straight on Node's request and response. A profile under load put Hono and
 * its Node adapter (a fetch Request and Context per request, four middleware
 * frames, the Response round trip) at about as much CPU per narinfo as all of
 * Node's own HTTP work; plain node:http answers the same bytes at about
 * nginx's cost. Anything else — another method or path, a query, a missing
 * or wrong edge secret, an unknown cache, a store error — is not
 * answered here but handed to the Hono app, which answers it as always. What
 * is answered here is what the app would answer: the same bytes (the same
 * rendered-narinfo cache), the same headers as respond.ts's send(), the same
 * /metrics and usage counts under the same route names. (routes/fast-path.ts: what the
 * fast paths share; routes/nar-fast.ts: the other one, small NARs.)
 */
import { HASH_PART_LENGTH, isHashPart } from '../../../shared/store-path.ts';
import { NARINFO_ROUTE } from '../app.ts';
import type { CacheRegistry } from '../../caches/registry.ts';
import type { AppSettings } from '../types.ts';
import { NO_SUCH_PATH, renderedNarInfo } from './narinfo.ts';
import { fastGet, type FastPath } from './fast-path.ts';
import { sentHeaders, TEXT } from '../respond.ts';

const SUFFIX = '.narinfo';
const HASH = HASH_PART_LENGTH;
/**
 * A miss as the app answers it (errors.ts's onError: the line, text, no-store). Misses are most of what a
 * cache that is one substituter of several is asked (Nix asks each for every path it lacks), and through the
 * app one cost about twice a hit (bench/README.md).
 */
const MISS = `${NO_SUCH_PATH}\n`;
const MISS_HEADERS = sentHeaders(TEXT, Buffer.byteLength(MISS));

export function narinfoFastPath(caches: CacheRegistry, settings: Pick<AppSettings, 'edgeSecret'>): FastPath {
  return fastGet(caches, settings, SUFFIX, function fastNarinfo(req, res, url, targetOf) {
    // `/<hash>.narinfo` or `/<cache>/<hash>.narinfo`, nothing else (no query, no dot segments, no encoding).
    const hashAt = url.length - SUFFIX.length - HASH;
    const hashPart = url.slice(hashAt, hashAt + HASH);
    if (!isHashPart(hashPart)) return false;
    const target = targetOf(hashAt, NARINFO_ROUTE);
    if (!target) return false;
    const { ctx, route } = target;
    const started = performance.now();
    let info;
    try {
      info = ctx.deps.store.lookupNow(hashPart); // from memory, or one synchronous DB read: no promise per request
    } catch {
      return false; // busy or broken store: the app waits for it or answers 503/500
    }
    const { metrics, usage } = ctx.deps;
    const head = req.method === 'HEAD'; // Nix's "is this path there?" (a push asks it of every path): the GET's headers, no body
    if (!info) {
      metrics.request(route, 404, req.method);
      if (!head) metrics.sent(route, MISS.length, req.method);
      usage?.narinfo(target.user, ctx.name, false, target.token);
      res.writeHead(404, MISS_HEADERS);
      if (head) res.end();
      else res.end(MISS, 'latin1');
      metrics.narinfo((performance.now() - started) / 1000, false);
      return true;
    }
    const { body, ascii, headers } = renderedNarInfo(info, ctx.deps, ctx.settings);
    metrics.request(route, 200, req.method);
    if (!head) metrics.sent(route, body.byteLength);
    usage?.narinfo(target.user, ctx.name, true, target.token);
    res.writeHead(200, headers);
    if (head) res.end();
    else if (ascii !== undefined) res.end(ascii, 'latin1'); // headers and body in one write(2), not a writev of two buffers
    else res.end(body);
    metrics.narinfo((performance.now() - started) / 1000, true);
    return true;
  }, true);
}
