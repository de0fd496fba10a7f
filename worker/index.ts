/** Worker entry: the composition root. Wires the environment to createWorkerApp once per isolate. */
import type { Env } from './env.ts';
import { createWorkerApp, type WorkerDeps } from './app.ts';
import { EdgeConfigError, parseEdgeConfig } from './config.ts';
import { cachedTokenStore, kvTokenStore } from './tokens.ts';
import { createOriginClient, createOriginTransport, type FetchOrigin, type OriginBinding } from './origin-client.ts';
import type { RateLimiter } from './middleware/rate-limit/index.ts';
import { consoleLog, type Clock, type Log } from './log.ts';
import { NO_STORE, CONTENT_TYPE } from '../shared/contract.ts';
import { createOidc } from './oidc/index.ts';
import type { FetchLike } from './oidc/issuer-keys.ts';

/** What the runtime provides; tests replace any of it. */
export interface WorkerRuntime {
  /** fetch() to the origin when there is no VPC binding. */
  fetchImpl?: FetchOrigin;
  log?: Log;
  now?: Clock;
  authLimiter?: RateLimiter;
  /** fetch() to OIDC issuers (discovery documents and JWKS). */
  oidcFetch?: FetchLike;
}

/** The app's dependencies from the Worker environment: how to reach each origin, where tokens live, the log and clock. */
export function workerDeps(env: Env, runtime: WorkerRuntime = {}): WorkerDeps {
  const config = parseEdgeConfig(env);
  const log = runtime.log ?? consoleLog;
  const now = runtime.now ?? Date.now;
  const bindings = env as unknown as Record<string, OriginBinding | undefined>;
  const origins = config.origins.map((spec) =>
    createOriginClient({
      id: spec.id,
      url: spec.url,
      edgeSecret: spec.edgeSecret,
      transport: createOriginTransport({ binding: spec.binding ? bindings[spec.binding] : undefined, access: config.access, fetchImpl: runtime.fetchImpl }),
      log,
      now,
      // A trial is over when its budget is: the longest budget plus a margin.
      breaker: { ...config.breaker, trialTimeoutMs: Math.max(config.narTimeoutMs, config.metadataTimeoutMs) + 1000 },
    }),
  );
  const stored = cachedTokenStore(kvTokenStore(env.TOKENS), { ttlMs: config.tokenCacheMs, now });
  const oidc = config.oidc && createOidc(config.oidc, { fetchImpl: runtime.oidcFetch, now, log });
  const tokens = oidc ? oidc.tokens(stored) : stored;
  return { config, tokens, origins, log, now, authLimiter: runtime.authLimiter, oidcExchange: oidc?.exchange };
}

let built: { env: Env; app: ReturnType<typeof createWorkerApp> } | undefined;

function appFor(env: Env) {
  if (built?.env !== env) built = { env, app: createWorkerApp(workerDeps(env)) };
  return built.app;
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    let app;
    try {
      app = appFor(env);
    } catch (err) {
      const message = err instanceof EdgeConfigError ? `edge misconfigured: ${err.message}` : 'edge misconfigured';
      consoleLog({ msg: message });
      return new Response(message + '\n', { status: 500, headers: { 'Cache-Control': NO_STORE, 'Content-Type': CONTENT_TYPE.text } });
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
