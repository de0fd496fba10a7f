/** Worker entry: wires the environment to createWorkerApp once per isolate. */
import type { Env } from './env.ts';
import { createWorkerApp } from './app.ts';
import { EdgeConfigError, parseEdgeConfig } from './config.ts';
import { kvTokenStore } from './tokens.ts';
import { createOriginFetch } from './origin-fetch.ts';
import { NO_STORE } from '../shared/contract.ts';

/** The app's dependencies from the Worker environment: how to reach the origin, where tokens live. */
export function workerDeps(env: Env, fetchImpl?: (req: Request) => Promise<Response>) {
  const config = parseEdgeConfig(env);
  return {
    config,
    tokens: kvTokenStore(env.TOKENS),
    fetchOrigin: createOriginFetch({ binding: env.ORIGIN, access: config.access, fetchImpl }),
  };
}

let built: { env: Env; app: ReturnType<typeof createWorkerApp> } | undefined;

function appFor(env: Env) {
  if (built?.env !== env) {
    built = {
      env,
      app: createWorkerApp(workerDeps(env)),
    };
  }
  return built.app;
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    let app;
    try {
      app = appFor(env);
    } catch (err) {
      const message = err instanceof EdgeConfigError ? `edge misconfigured: ${err.message}` : 'edge misconfigured';
      console.error(message);
      return new Response(message + '\n', { status: 500, headers: { 'Cache-Control': NO_STORE, 'Content-Type': 'text/plain; charset=utf-8' } });
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
