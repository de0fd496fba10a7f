import type { HttpBindings } from '@hono/node-server';
import type { Store } from '../store/store.ts';
import type { Signer } from '../../shared/signing.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { SignatureCache } from './signature-cache.ts';
import type { NarCache } from '../compression/nar-cache.ts';
import type { Compression } from '../compression/compress.ts';
import type { Usage } from '../usage/recorder.ts';
import type { PushDeps } from '../push/index.ts';
import type { Compressions } from '../compression/flights.ts';
import type { Admission } from './admission.ts';
import type { TempRoots } from '../store/temp-roots.ts';
import type { RetentionScheduler } from '../retention/scheduler.ts';
import type { PinService } from '../retention/pins.ts';

/** What the routes need; built once in main.ts (or by a test). */
export interface OriginDeps {
  store: Store;
  signers: Signer[];
  log: Logger;
  metrics: Metrics;
  signatures: SignatureCache;
  narCache?: NarCache;
  /** In cluster mode: the counters of every worker, for /metrics. */
  clusterMetrics?: () => Promise<Metrics>;
  /** Single-flight compressions under the cap; present when the origin serves compressed NARs. */
  compressions?: Compressions;
  /** Admission control (requests in progress, NAR streams). */
  admission?: Admission;
  /** Usage accounting (per user, cache and day) and the per-cache /metrics counters. */
  usage?: Usage;
  /** HTTP push; absent when push_dir is not set. Shared by every cache (it holds the whole store). */
  push?: PushDeps;
  /** Nix temporary GC roots on the paths being served (store/temp-roots.ts); absent with temp_roots = "off". */
  tempRoots?: TempRoots;
  /** The origin's own retention sweeps (daily, and after pushes into a cache with max_bytes). */
  retention?: RetentionScheduler;
  /** Pins over HTTP (`eris push --pin`); present with push. */
  pins?: PinService;
}

export interface AppSettings {
  storeDir: string;
  priority: number;
  edgeSecret: string;
  /** Opens /metrics with `Authorization: Bearer …` (metrics_token_file); the edge secret opens it too. */
  metricsToken?: string;
  /** Where usage.sqlite lives (the admin figures read it); none: no usage recorded. */
  stateDir?: string;
  version: string;
  compression: Compression;
  compressionLevel: number;
}

/** Hono environment of the origin app. Bindings are absent under app.request() in tests. */
export type OriginEnv = {
  Bindings: Partial<HttpBindings>;
  /** `cache`: the name of the cache a per-cache route is answering for. */
  Variables: { deps: OriginDeps; settings: AppSettings; cache?: string };
};
