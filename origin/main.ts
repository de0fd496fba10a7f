/**
 * `eris serve`: load config → build deps → listen. All side effects of
 * starting the origin live here; a bad config fails before listening.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { createApp } from './app.ts';
import { createStore } from './store/store.ts';
import { createSigner, type Signer } from '../shared/signing.ts';
import { ConfigError, type OriginConfig } from './config.ts';
import { createLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { createSignatureCache } from './signature-cache.ts';
import { createNarCache, type NarCache } from './store/nar-cache.ts';

export const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

export function loadSigners(paths: readonly string[]): Signer[] {
  return paths.map((p, i) => {
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch (e) {
      throw new ConfigError(`sign_key_paths[${i}]: cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    try {
      return createSigner(text);
    } catch (e) {
      throw new ConfigError(`sign_key_paths[${i}]: ${p}: ${(e as Error).message}`);
    }
  });
}

export interface RunningOrigin {
  url: string;
  port: number;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function startOrigin(config: OriginConfig, log: Logger = createLogger(), extra: { clusterMetrics?: (own: Metrics) => Promise<Metrics> } = {}): Promise<RunningOrigin> {
  const signers = loadSigners(config.signKeyPaths);
  let store;
  try {
    store = createStore({ root: config.storeRoot, storeDir: config.storeDir, busyTimeoutMs: config.dbBusyTimeoutMs });
  } catch (e) {
    throw new ConfigError(`store_root: ${(e as Error).message}`);
  }
  const metrics = new Metrics();
  let narCache: NarCache | undefined;
  if (config.narCacheDir) {
    try {
      narCache = createNarCache(config.narCacheDir, config.narCacheMaxBytes);
    } catch (e) {
      throw new ConfigError(`nar_cache_dir: ${(e as Error).message}`);
    }
    const cache = narCache;
    metrics.gauges.eris_nar_cache_bytes = () => cache.totalBytes;
  }
  const app = createApp(
    {
      storeDir: config.storeDir,
      priority: config.priority,
      edgeSecret: config.edgeSecret,
      version: VERSION,
      compression: config.compression,
      compressionLevel: config.compressionLevel,
    },
    {
      store,
      signers,
      log,
      metrics,
      signatures: createSignatureCache(signers, 50_000, metrics),
      narCache,
      clusterMetrics: extra.clusterMetrics ? () => extra.clusterMetrics!(metrics) : undefined,
    },
  );
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  // Slow or abandoned clients must not pile up: bounded time to send headers.
  server.headersTimeout = 20_000;
  server.requestTimeout = 0; // NAR responses may stream for a long time
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  log.info({ msg: 'eris origin listening', url: `http://${host}:${port}`, storeRoot: config.storeRoot, keys: signers.map((s) => s.name) });
  return {
    url: `http://${host}:${port}`,
    port,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          store.close();
          resolve();
        });
      }),
  };
}
