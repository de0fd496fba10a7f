/** Worker entry: wires the environment to createWorkerApp once per isolate. */
import type { Env } from './env.ts';
import { createWorkerApp } from './app.ts';
import { EdgeConfigError, parseEdgeConfig } from './config.ts';
import { kvTokenStore } from './tokens.ts';

let built: { env: Env; app: ReturnType<typeof createWorkerApp> } | undefined;

function appFor(env: Env) {
  if (built?.env !== env) {
    built = {
      env,
      app: createWorkerApp({
        config: parseEdgeConfig(env),
        tokens: kvTokenStore(env.TOKENS),
        fetchOrigin: (req) => fetch(req),
      }),
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
      return new Response(message + '\n', { status: 500, headers: { 'Cache-Control': 'private, no-store', 'Content-Type': 'text/plain; charset=utf-8' } });
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
