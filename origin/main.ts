/**
 * `eris serve`: load config → build deps → listen. All side effects of
 * starting the origin live here; a bad config fails before listening.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { createServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { NO_STORE, TEXT } from './respond.ts';
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
  // Requests Hono never sees — refused by Node's parser or by @hono/node-server's URL check — also get
  // a one-line answer marked no-store.
  const listener = getRequestListener(app.fetch, {
    errorHandler: () => new Response('bad request\n', { status: 400, headers: { 'Cache-Control': NO_STORE, 'Content-Type': TEXT } }),
  });
  const server = createServer(listener);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) return void socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    const body = status.slice(4).toLowerCase() + '\n';
    socket.end(`HTTP/1.1 ${status}\r\nCache-Control: ${NO_STORE}\r\nContent-Type: ${TEXT}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
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
