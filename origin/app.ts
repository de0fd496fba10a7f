/**
 * Builds the origin's Hono app from its settings and dependencies. The only
 * place that lists the routes; each route lives in routes/<name>.ts.
 */
import { Hono } from 'hono';
import type { AppSettings, OriginDeps, OriginEnv } from './types.ts';
import { edgeAuth } from './middleware/edge-auth/index.ts';
import { send, TEXT } from './respond.ts';
import { onError } from './errors.ts';
import { getCacheInfo } from './routes/nix-cache-info.ts';
import { getListing, getNarInfo } from './routes/narinfo.ts';
import { getBuildLog } from './routes/log.ts';
import { getRealisation } from './routes/realisation.ts';
import { getMetrics } from './routes/metrics.ts';
import { getNar } from './routes/nar.ts';
import { getPublicKey } from './routes/public-key.ts';
import { getVersion } from './routes/version.ts';
import { getHealth } from './routes/health.ts';

export function createApp(settings: AppSettings, deps: OriginDeps) {
  const app = new Hono<OriginEnv>();
  app.use(async (c, next) => {
    c.set('deps', deps);
    c.set('settings', settings);
    await next();
  });
  app.use(edgeAuth(settings.edgeSecret));

  app.get('/nix-cache-info', getCacheInfo);
  app.get('/v1/public-key', getPublicKey);
  app.get('/v1/version', getVersion);
  app.get('/health', getHealth);
  app.get('/metrics', getMetrics);
  app.get('/:file{[^/]+\\.narinfo}', getNarInfo);
  app.get('/:file{[^/]+\\.ls}', getListing);
  app.get('/nar/:file', getNar);
  app.get('/log/:drv', getBuildLog);
  app.get('/realisations/:file', getRealisation);

  app.notFound((c) => send(c, 404, 'not found\n', TEXT));
  app.onError(onError);
  return app;
}
