/**
 * Builds the edge app. Order: no-store on everything, request log, path
 * sanity, failed-auth rate limit, authentication, then the proxy to the
 * origins (through their origin clients and circuit breakers).
 */
import { Hono, type Handler, type MiddlewareHandler } from 'hono';
import { isCacheName } from '../shared/caches.ts';
import type { EdgeEnv } from './types.ts';
import { noStore } from './middleware/no-store/index.ts';
import { requestLog } from './middleware/request-log/index.ts';
import { pathSanity } from './middleware/path-sanity/index.ts';
import { auth } from './middleware/auth/index.ts';
import { authRateLimit, type RateLimiter } from './middleware/rate-limit/index.ts';
import { createProxy } from './proxy.ts';
import type { EdgeConfig } from './config.ts';
import type { TokenStore } from './tokens.ts';
import type { OriginClient } from './origin-client.ts';
import type { Clock, Log } from './log.ts';
import { landingPage, publicKeyList } from './routes/landing.ts';
import { cacheList } from './routes/caches.ts';
import { cacheConfig } from './routes/cache-config.ts';
import { CACHE_SEGMENT, isNarPath } from './cache-routing.ts';
import { uploadLimit } from './middleware/upload-limit/index.ts';
import { pushProtocol, PUSH_ROUTES } from './routes/push.ts';
import { OIDC_TOKEN_PATH } from '../shared/oidc-exchange.ts';
import { adminRoutes } from './routes/admin.ts';
import { ADMIN_DATA_PATH, ADMIN_PATH, isAdminPath } from '../shared/admin.ts';
import { scopeFor as pushScopeFor } from '../shared/push-protocol.ts';
import { cacheOfPath } from '../shared/caches.ts';

export interface WorkerDeps {
  config: EdgeConfig;
  tokens: TokenStore;
  /** The origins, in priority order (at least one), each with its client and breaker. */
  origins: OriginClient[];
  log: Log;
  /** Clock for the request log, the rate limiter and the circuit breaker. */
  now: Clock;
  /** Failed-auth limiter; by default the AUTH_RATE_LIMITER binding from the request's env. */
  authLimiter?: RateLimiter;
  /** `POST /v1/oidc/token` (worker/oidc), when OIDC_TRUST is set. */
  oidcExchange?: Handler<EdgeEnv>;
}

export const PUBLIC_PATHS = new Set(['/', '/v1/public-key']);
/** Paths that carry no eris token: the public ones, and the OIDC exchange (its credential is the CI's JWT, and its refusals count as failed logins). */
const UNAUTHENTICATED_PATHS = new Set([...PUBLIC_PATHS, OIDC_TOKEN_PATH]);

/** The scope a request needs: `admin` for the operator's page, otherwise push's rule (reads read, writes and uploads write). */
export const scopeFor = (method: string, path: string): string => (isAdminPath(path) ? 'admin' : pushScopeFor(method, cacheOfPath(path).rest));

export function createWorkerApp(deps: WorkerDeps) {
  const { config, log, now } = deps;
  const app = new Hono<EdgeEnv>();

  app.use(noStore());
  app.use(requestLog({ log, now }));
  app.use(pathSanity());
  app.use(authRateLimit({ publicPaths: PUBLIC_PATHS, limiter: deps.authLimiter, now, log }));
  app.use(auth({ tokens: deps.tokens, realm: config.realm, allowAnonymous: config.allowAnonymous, publicPaths: UNAUTHENTICATED_PATHS, defaultCache: config.defaultCache, scopeFor, now }));

  const proxy = createProxy({
    origins: deps.origins,
    timeoutFor: (path) => (isNarPath(path) ? config.narTimeoutMs : config.metadataTimeoutMs),
    hedgeMs: config.hedgeMs,
  });
  // Everything that lists keys asks every origin and merges (origin-keys.ts): a client must trust each box's key.
  const keyListing = { origins: deps.origins, timeoutMs: config.metadataTimeoutMs, log };
  const landingOptions = { ...keyListing, allowAnonymous: config.allowAnonymous };
  app.get('/', landingPage(landingOptions));
  // With one origin its /v1/public-key answer is passed on as is (through the proxy below).
  if (deps.origins.length > 1) app.get('/v1/public-key', publicKeyList(keyListing));
  app.post(OIDC_TOKEN_PATH, deps.oidcExchange ?? ((c) => c.text('OIDC exchange not configured on this edge (OIDC_TRUST)\n', 404)));
  app.get('/v1/caches', cacheList(keyListing));
  app.get('/v1/cache-config', cacheConfig(keyListing));
  // `/<name>` and `/<name>/`: that cache's landing page (the auth middleware has checked the token's grant).
  const cacheLanding = landingPage(landingOptions);
  const onlyCaches: MiddlewareHandler<EdgeEnv> = async (c, next) => (isCacheName(c.req.param('cache') ?? '') ? cacheLanding(c) : next());
  app.get(`/:cache{${CACHE_SEGMENT}}`, onlyCaches);
  app.get(`/:cache{${CACHE_SEGMENT}}/`, onlyCaches);
  // The operator's page (the admin scope only, checked above); nothing else under /v1/admin/ reaches an origin.
  const admin = adminRoutes({ origins: deps.origins, timeoutMs: config.metadataTimeoutMs, log });
  app.get(ADMIN_PATH, admin.page);
  app.get(ADMIN_DATA_PATH, admin.data);
  app.get(`${ADMIN_PATH}/*`, (c) => c.text('not found\n', 404));
  // Operational endpoints of the origin stay on the box.
  app.get('/metrics', (c) => c.text('not found\n', 404));
  app.on(['GET', 'HEAD'], '*', proxy);
  // Pushes (auth above required the write scope on that cache): bounded by MAX_UPLOAD_BYTES, streamed to the
  // first origin, which verifies and imports before it answers — so they get their own, longer budget.
  const pushProxy = createProxy({ origins: deps.origins, timeoutFor: () => config.pushTimeoutMs, hedgeMs: 0 });
  const limit = uploadLimit(config.maxUploadBytes, config.defaultCache);
  // `eris push`: the missing question, upload starts and parts, under a named cache only (never the global /v1/).
  app.post(`/:cache{${CACHE_SEGMENT}}${PUSH_ROUTES.post}`, limit, pushProtocol(pushProxy, config.maxUploadBytes));
  app.put('*', limit, pushProxy);
  app.all('*', (c) => c.text('method not allowed\n', 405, { Allow: 'GET, HEAD, PUT, POST' }));
  app.onError((err, c) => {
    log({ msg: 'edge error', path: c.req.path, error: String(err) });
    return c.text('edge error\n', 500);
  });
  return app;
}
