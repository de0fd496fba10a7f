/**
 * The origin's composition root: one OriginConfig in, the app and everything
 * it depends on out. Keys, store and NAR cache are checked here, once, each
 * failure a ConfigError naming the key. No sockets: server.ts listens, main.ts
 * wires the two; tests pass their own store (test/helpers/memory-store.ts) and
 * call `app.request()`.
 */
import { readFileSync } from 'node:fs';
import { createApp } from './app.ts';
import { createStore, type Store } from '../store/store.ts';
import { createSigner, type Signer } from '../../shared/signing.ts';
import { ConfigError, type OriginConfig } from '../config/index.ts';
import { silentLogger, type Logger } from './log.ts';
import { Metrics } from './metrics.ts';
import { createSignatureCache } from './signature-cache.ts';
import { createNarCache, type NarCache } from '../compression/nar-cache.ts';
import { createUsage } from '../usage/recorder.ts';
import { VERSION } from './version.ts';
import type { AppSettings, OriginDeps } from './types.ts';
import { createCacheRegistry, type CacheRegistry } from '../caches/registry.ts';
import { startPublisher } from '../caches/publisher.ts';
import type { ClosureDb } from '../store/closure-db.ts';
import { storeDbPath } from '../store/store.ts';
import { createPush } from '../push/index.ts';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createAdmission } from './admission.ts';
import { createCompressions, type Compressions } from '../compression/flights.ts';
import { createLocalSlots, type Slots } from '../compression/slots.ts';
import { startTempRoots } from '../store/temp-roots.ts';
import { startRetention } from '../retention/scheduler.ts';
import { createPinService } from '../retention/pins.ts';
import { addFreeSpaceGauges } from '../retention/disk.ts';

/** `key` names the config key in errors: `sign_key_paths`, or `cache[1].sign_key_paths`. */
export function loadSigners(paths: readonly string[], key = 'sign_key_paths'): Signer[] {
  return paths.map((p, i) => {
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch (e) {
      throw new ConfigError(`${key}[${i}]: cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    try {
      return createSigner(text);
    } catch (e) {
      throw new ConfigError(`${key}[${i}]: ${p}: ${(e as Error).message}`);
    }
  });
}

/** Every cache's signers, keyed by cache name; a cache using the top-level keys shares their Signers. */
export function loadCacheSigners(config: OriginConfig): Map<string, Signer[]> {
  const top = config.signKeyPaths.length ? loadSigners(config.signKeyPaths) : [];
  return new Map(config.caches.map((c, i) => [
    c.name,
    c.signKeyPaths === config.signKeyPaths ? top : loadSigners(c.signKeyPaths, `cache[${i}].sign_key_paths`),
  ]));
}

/** The store the config names, opened; a missing or unreadable store is a ConfigError on store_root. */
export function openConfiguredStore(config: OriginConfig): Store {
  try {
    return createStore({ root: config.storeRoot, storeDir: config.storeDir, busyTimeoutMs: config.dbBusyTimeoutMs });
  } catch (e) {
    throw new ConfigError(`store_root: ${(e as Error).message}`);
  }
}

/** What `eris serve` checks before it listens (or, with workers, before it forks): keys and store. */
export function checkStartup(config: OriginConfig): void {
  loadCacheSigners(config);
  openConfiguredStore(config).close();
}

export function appSettings(config: OriginConfig): AppSettings {
  return {
    storeDir: config.storeDir,
    priority: config.priority,
    edgeSecret: config.edgeSecret,
    metricsToken: config.metricsToken,
    stateDir: config.stateDir,
    version: VERSION,
    compression: config.compression,
    compressionLevel: config.compressionLevel,
  };
}

export interface ComposeOptions {
  log?: Logger;
  /** Instead of the store the config names (tests: an in-memory store). */
  store?: Store;
  /** Instead of the keys in sign_key_paths: for every cache… */
  signers?: Signer[];
  /** …or per cache name. */
  cacheSigners?: Record<string, Signer[]>;
  /** Instead of a connection to the store's DB, for computing published sets (tests). */
  closureDb?: ClosureDb;
  /** In cluster mode: every worker's counters, given this process's own. */
  clusterMetrics?: (own: Metrics) => Promise<Metrics>;
  /** In cluster mode: the compression cap kept by the primary (compression/cluster-slots.ts). */
  slots?: Slots;
}

export interface ComposedOrigin {
  app: ReturnType<typeof createApp>;
  deps: OriginDeps;
  settings: AppSettings;
  caches: CacheRegistry;
  /** Resolves when every cache's published set is computed (listen after it); rejects with a ConfigError. */
  ready: Promise<void>;
  /** Closes the store and stops following the caches' roots. */
  close(): void;
}

/** Builds OriginDeps from the config and the app over them. */
export function composeOrigin(config: OriginConfig, o: ComposeOptions = {}): ComposedOrigin {
  const cacheSigners = o.signers || o.cacheSigners ? undefined : loadCacheSigners(config);
  const signersOf = (name: string): Signer[] => o.cacheSigners?.[name] ?? o.signers ?? cacheSigners!.get(name)!;
  const defaultCache = config.defaultCache ?? config.caches[0]!.name;
  const signers = signersOf(defaultCache);
  const log = o.log ?? silentLogger;
  const metrics = new Metrics();

  // What is open so far, closed last-opened first: by close(), or when a later step fails.
  const opened: (() => void)[] = [];
  const closeAll = () => {
    for (const close of opened.splice(0).reverse()) close();
  };
  /** One step of the composition: its failure closes what the earlier steps opened and names the config key. */
  const step = <T>(key: string, open: () => T, close?: (t: T) => void): T => {
    let t: T;
    try {
      t = open();
    } catch (e) {
      closeAll();
      throw new ConfigError(`${key}: ${(e as Error).message}`);
    }
    if (close) opened.push(() => close(t));
    return t;
  };

  const store = o.store ?? openConfiguredStore(config);
  opened.push(() => store.close());
  const narCache = config.narCacheDir ? step('nar_cache_dir', () => createNarCache(config.narCacheDir!, config.narCacheMaxBytes)) : undefined;
  if (narCache) metrics.gauges.eris_nar_cache_bytes = () => narCache.totalBytes;
  if (!o.store) addFreeSpaceGauges(metrics, config);
  const compressions = config.compression === 'none' ? undefined : startCompressions(config, config.compression, { store, narCache, metrics, log, slots: o.slots });
  const usage = step('state_dir', () => createUsage({ stateDir: config.stateDir, retentionDays: config.usageRetentionDays, metrics, log }), (u) => u.close());
  const clusterMetrics = o.clusterMetrics;
  const deps: OriginDeps = {
    store,
    signers,
    log,
    metrics,
    signatures: createSignatureCache(signers, 50_000, metrics),
    narCache,
    compressions,
    admission: createAdmission(config, metrics),
    usage,
    clusterMetrics: clusterMetrics ? () => clusterMetrics(metrics) : undefined,
  };
  if (!o.store && config.caches.some((c) => c.keepDays !== undefined || c.maxBytes !== undefined)) {
    const retention = startRetention({ storeRoot: config.storeRoot, storeDir: config.storeDir, stateDir: config.stateDir, caches: config.caches, log });
    deps.retention = retention;
    opened.push(() => retention.close());
  }
  // A store given by a test has no daemon to hold roots through.
  const roots = o.store ? { stop: () => {} } : startTempRoots({ tempRoots: config.tempRoots, storeRoot: config.storeRoot, pushStore: config.push?.storeUri, log });
  deps.tempRoots = roots.tempRoots;
  opened.push(() => roots.stop());
  if (config.push) {
    const pushConfig = config.push;
    deps.push = step('push_dir', () => createPush(pushConfig, {
      store, storeRoot: config.storeRoot, storeDir: config.storeDir, log, metrics,
      signers: config.caches.flatMap((c) => signersOf(c.name)),
      refreshPublished: () => publisher.then((p) => p.refresh()),
      minFreeBytes: config.minFreeBytes,
    }), (p) => p.close());
    deps.pins = createPinService({ storeRoot: config.storeRoot, storeDir: config.storeDir });
  }
  const publisher = startPublisher({
    storeRoot: config.storeRoot,
    storeDir: config.storeDir,
    dbPath: storeDbPath(config.storeRoot),
    caches: config.caches,
    log,
    db: o.closureDb,
  });
  const settings = appSettings(config);
  const caches = createCacheRegistry({ config, base: deps, settings, signersFor: (c) => signersOf(c.name), publisher });
  opened.push(() => caches.close()); // the publisher's too
  const ready = caches.ready.catch((e: Error) => {
    throw new ConfigError(`cache: ${e.message}`);
  });
  ready.catch(() => {});
  return { app: createApp(settings, deps, caches), deps, settings, caches, ready, close: closeAll };
}

/** On-the-fly compression for config.compression, its slots (compression_max) and its gauges. */
function startCompressions(config: OriginConfig, method: Exclude<OriginConfig['compression'], 'none'>, o: { store: Store; narCache?: NarCache; metrics: Metrics; log: Logger; slots?: Slots }): Compressions {
  const slots = o.slots ?? createLocalSlots(config.compressionMax, config.compressionQueue);
  const compressions = createCompressions({
    store: o.store, slots, narCache: o.narCache, metrics: o.metrics, log: o.log,
    method, level: config.compressionLevel, spoolDir: join(tmpdir(), 'eris-spool'),
  });
  o.metrics.levels.eris_compressions_running = { help: 'NAR compressions running now.', read: () => compressions.running };
  o.metrics.levels.eris_compressions_queued = { help: 'NAR compressions waiting for a place (compression_max).', read: () => compressions.queued };
  return compressions;
}
