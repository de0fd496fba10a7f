/**
 * `eris serve` in one process: compose the origin from its config
 * (compose.ts, which fails on bad keys or store before anything listens),
 * then listen (server.ts).
 */
import type { OriginConfig } from '../config/index.ts';
import { createLogger, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import { composeOrigin, type ComposeOptions } from './compose.ts';
import { listen, type Listening } from './listen.ts';
import { narinfoFastPath } from './routes/narinfo-fast.ts';
import { smallNarFastPath } from './routes/nar-fast.ts';
import { firstOf } from './routes/fast-path.ts';
import { metricsListener } from './routes/metrics.ts';

export interface RunningOrigin {
  url: string;
  port: number;
  /** The metrics_bind listener's URL (…/metrics), when there is one. */
  metricsUrl?: string;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function startOrigin(config: OriginConfig, log: Logger = createLogger(), extra: Pick<ComposeOptions, 'clusterMetrics' | 'slots'> = {}): Promise<RunningOrigin> {
  const origin = composeOrigin(config, { log, clusterMetrics: extra.clusterMetrics, slots: extra.slots });
  let server;
  let metricsServer: Listening | undefined;
  try {
    await origin.ready;
    server = await listen(origin.app.fetch, config, firstOf(narinfoFastPath(origin.caches, origin.settings), smallNarFastPath(origin.caches, origin.settings)));
    // In cluster mode every worker listens here too (node:cluster shares the port) and answers for all of them.
    if (config.metricsBind) metricsServer = await listen(metricsListener(origin.deps), config.metricsBind);
  } catch (e) {
    await server?.close();
    origin.close();
    throw e;
  }
  if (metricsServer) log.info({ msg: 'eris metrics listening', url: `${metricsServer.url}/metrics` });
  log.info({ msg: 'eris origin listening', url: server.url, storeRoot: config.storeRoot, keys: origin.deps.signers.map((s) => s.name),
    caches: origin.caches.all.map((c) => c.name), defaultCache: origin.caches.default?.name ?? null });
  return {
    url: server.url,
    port: server.port,
    metricsUrl: metricsServer && `${metricsServer.url}/metrics`,
    metrics: origin.deps.metrics,
    close: async () => {
      await metricsServer?.close();
      await server.close();
      origin.close();
    },
  };
}
