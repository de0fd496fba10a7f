/**
 * Builds the edge app. Order: no-store on everything, request log, path
 * sanity, failed-auth rate limit, authentication, then the proxy to the
 * origin (behind its circuit breaker).
 */
import { Hono } from 'hono';
import type { EdgeEnv } from './types.ts';
import { noStore } from './middleware/no-store/index.ts';
import { auth } from './middleware/auth/index.ts';
import { createProxy, type FetchOrigin } from './proxy.ts';
import { authRateLimit, type RateLimiter } from './middleware/rate-limit/index.ts';
import type { EdgeConfig } from './config.ts';
import type { TokenStore } from './tokens.ts';
import { landingPage } from './routes/landing.ts';

export interface WorkerDeps {
  config: EdgeConfig;
  tokens: TokenStore;
  fetchOrigin: FetchOrigin;
  log?: (line: Record<string, unknown>) => void;
  /** Failed-auth limiter; by default the AUTH_RATE_LIMITER binding from the request's env. */
  authLimiter?: RateLimiter;
  /** Clock for the rate limiter and the circuit breaker (tests). */
  now?: () => number;
}

export const PUBLIC_PATHS = new Set(['/', '/v1/public-key']);

/** Paths whose raw form hides separators or dots: the auth check and the origin must see the same path. */
function suspiciousPath(rawUrl: string): string | null {
  const start = rawUrl.indexOf('/', rawUrl.indexOf('//') + 2);
  const end = rawUrl.search(/[?#]/);
  const raw = start < 0 ? '/' : rawUrl.slice(start, end < 0 ? undefined : end);
  if (raw.length > 1024) return 'URL too long';
  if (/%2f|%5c|%2e|%00|\\|\/\/|\/\.\.?(\/|$)/i.test(raw)) return 'malformed path';
  return null;
}

export function createWorkerApp(deps: WorkerDeps) {
  const { config } = deps;
  const log = deps.log ?? ((line) => console.log(JSON.stringify(line)));
  const app = new Hono<EdgeEnv>();

  app.use(noStore());
  app.use(async function requestLog(c, next) {
    const started = Date.now();
    await next();
    const entry: Record<string, unknown> = {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      user: c.get('user') ?? null,
      ms: Date.now() - started,
      bytes: c.res.headers.get('content-length') ? Number(c.res.headers.get('content-length')) : null,
    };
    const failure = c.get('authFailure');
    if (failure) entry.auth = failure; // 401s look like misses to Nix: make them visible here.
    log(entry);
  });
  app.use(async function pathSanity(c, next) {
    const problem = suspiciousPath(c.req.url);
    if (problem) return c.text(problem + '\n', 400);
    await next();
  });
  app.use(authRateLimit({ publicPaths: PUBLIC_PATHS, limiter: deps.authLimiter, now: deps.now, log }));
  app.use(auth({ tokens: deps.tokens, realm: config.realm, allowAnonymous: config.allowAnonymous, publicPaths: PUBLIC_PATHS }));

  const proxy = createProxy({
    originUrl: config.originUrl,
    edgeSecret: config.edgeSecret,
    fetchOrigin: deps.fetchOrigin,
    timeoutFor: (path) => (path.startsWith('/nar/') ? config.narTimeoutMs : config.metadataTimeoutMs),
    breaker: config.breaker,
    now: deps.now,
  });
  app.get('/', landingPage({ originUrl: config.originUrl, edgeSecret: config.edgeSecret, fetchOrigin: deps.fetchOrigin,
    timeoutMs: config.metadataTimeoutMs, allowAnonymous: config.allowAnonymous }));
  // Operational endpoints of the origin stay on the box.
  app.get('/metrics', (c) => c.text('not found\n', 404));
  app.on(['GET', 'HEAD'], '*', proxy);
  app.all('*', (c) => c.text('method not allowed\n', 405, { Allow: 'GET, HEAD' }));
  app.onError((err, c) => {
    log({ msg: 'edge error', path: c.req.path, error: String(err) });
    return c.text('edge error\n', 500);
  });
  return app;
}
