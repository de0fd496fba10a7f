/**
 * `eris serve` in one process: compose the origin from its config
 * (compose.ts, which fails on bad keys or store before anything listens),
 * then listen (server.ts).
 */
import type { OriginConfig } from '../config/index.ts';
import { createLogger, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import { composeOrigin, type ComposeOptions } from './compose.ts';
import { listen } from './listen.ts';
import { narinfoFastPath } from './routes/narinfo-fast.ts';

export interface RunningOrigin {
  url: string;
  port: number;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function startOrigin(config: OriginConfig, log: Logger = createLogger(), extra: Pick<ComposeOptions, 'clusterMetrics' | 'slots'> = {}): Promise<RunningOrigin> {
  const origin = composeOrigin(config, { log, clusterMetrics: extra.clusterMetrics, slots: extra.slots });
  let server;
  try {
    await origin.ready;
    server = await listen(origin.app.fetch, config, narinfoFastPath(origin.caches, origin.settings));
  } catch (e) {
    origin.close();
    throw e;
  }
  log.info({ msg: 'eris origin listening', url: server.url, storeRoot: config.storeRoot, keys: origin.deps.signers.map((s) => s.name),
    caches: origin.caches.all.map((c) => c.name), defaultCache: origin.caches.default?.name ?? null });
  return {
    url: server.url,
    port: server.port,
    metrics: origin.deps.metrics,
    close: async () => {
      await server.close();
      origin.close();
    },
  };
}
