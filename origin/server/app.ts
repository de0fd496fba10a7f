/**
 * Builds the origin's Hono app from its settings and dependencies. The only
 * place that lists the routes; each route lives in routes/<name>.ts.
 */
import { Hono } from 'hono';
import type { AppSettings, OriginDeps, OriginEnv } from './types.ts';
import { edgeAuth } from './middleware/edge-auth/index.ts';
import { usageCounter } from './middleware/usage/index.ts';
import { admissionControl } from './middleware/admission/index.ts';
import { send, TEXT } from './respond.ts';
import { onError } from './errors.ts';
import { getCacheInfo } from './routes/nix-cache-info.ts';
import { getListing, getNarInfo } from './routes/narinfo.ts';
import { getBuildLog } from './routes/log.ts';
import { getRealisation } from './routes/realisation.ts';
import { getMetrics, metricsAccess } from './routes/metrics.ts';
import { getAdminData } from '../usage/admin.ts';
import { ADMIN_DATA_PATH } from '../../shared/admin.ts';
import { getNar } from './routes/nar.ts';
import { getPublicKey } from './routes/public-key.ts';
import { getVersion } from './routes/version.ts';
import { getHealth } from './routes/health.ts';
import type { CacheRegistry } from '../caches/registry.ts';
import { cacheSelector, getCaches } from '../caches/routes.ts';
import { PUSH_PATHS, putUpload, withPushedNars } from '../push/routes.ts';
import { getUpload, PARTS_ROUTES, postBatch, postMissing, postUpload, putPart } from '../push/parts-routes.ts';
import { PIN_ROUTE, postPin } from '../retention/pin-route.ts';

/** The narinfo and NAR routes and the cache prefix (routes/narinfo-fast.ts and nar-fast.ts answer some of their requests and count them under these names). */
export const NARINFO_ROUTE = '/:file{[^/]+\\.narinfo}';
export const NAR_ROUTE = '/nar/:file';
export const CACHE_PREFIX = '/:cache';

/** Routes every cache answers, at `/<name>/…` and (the default cache) at the bare path. */
const PER_CACHE = [
  ['/nix-cache-info', getCacheInfo],
  [NARINFO_ROUTE, getNarInfo],
  ['/:file{[^/]+\\.ls}', getListing],
  [NAR_ROUTE, withPushedNars(getNar)],
  ['/log/:drv', getBuildLog],
  ['/realisations/:file', getRealisation],
] as const;

export function createApp(settings: AppSettings, deps: OriginDeps, caches: CacheRegistry) {
  const app = new Hono<OriginEnv>();
  app.use(async (c, next) => {
    c.set('deps', deps);
    c.set('settings', settings);
    await next();
  });
  // Before the edge secret check: a stock Prometheus scrape may bring the metrics token instead.
  app.get('/metrics', metricsAccess(settings), getMetrics);
  app.use(edgeAuth(settings.edgeSecret));
  app.use(admissionControl());
  app.use(usageCounter());

  const select = cacheSelector(caches);
  // The public key of the bare root is the default cache's.
  app.get('/v1/public-key', select.bare, getPublicKey);
  app.get('/v1/caches', getCaches(caches));
  app.get('/v1/version', getVersion);
  app.get('/health', getHealth);
  app.get(ADMIN_DATA_PATH, getAdminData(caches));
  // Every bare route before any /<cache>/ one: `/log/x.narinfo` stays a (malformed) log request.
  for (const [path, handler] of PER_CACHE) app.get(path, select.bare, handler);
  // `:cache` takes any segment (the metrics label stays /:cache/…); select.named answers 404 for a name no cache has.
  for (const [path, handler] of PER_CACHE) app.get(`${CACHE_PREFIX}${path}`, select.named, handler);
  // Push (`nix copy --to http…`): the same paths, PUT.
  for (const path of PUSH_PATHS) app.put(path, select.bare, putUpload);
  for (const path of PUSH_PATHS) app.put(`/:cache${path}`, select.named, putUpload);
  // eris push (shared/push-protocol.ts): under a named cache only.
  app.post(PARTS_ROUTES.missing, select.named, postMissing);
  app.post(PARTS_ROUTES.uploads, select.named, postUpload);
  app.get(PARTS_ROUTES.upload, select.named, getUpload);
  app.put(PARTS_ROUTES.upload, select.named, putPart);
  app.post(PARTS_ROUTES.batch, select.named, postBatch);
  // eris push --pin (shared/pins.ts).
  app.post(PIN_ROUTE, select.named, postPin);

  app.notFound((c) => send(c, 404, 'not found\n', TEXT));
  app.onError(onError);
  return app;
}
