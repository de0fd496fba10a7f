/** Builds the push pipeline from its config: staging, kept files, importer. */
import { mkdirSync } from 'node:fs';
import type { Signer } from '../../shared/signing.ts';
import type { Logger } from '../server/log.ts';
import type { Metrics } from '../server/metrics.ts';
import type { Store } from '../store/store.ts';
import type { PushConfig } from '../config/push.ts';
import { createImporter } from './import.ts';
import { createKeptFiles, type KeptFiles } from './kept.ts';
import { createPushService, type PushService } from './service.ts';
import { createStaging, type Staging } from './staging.ts';
import { createParts, type Parts } from './parts.ts';
import { createStreamImports } from './stream-import.ts';
import { createDiskGuard, DiskFullError, type DiskGuard } from '../retention/disk.ts';
import { diskFull } from './errors.ts';
import { join } from 'node:path';

export interface PushDeps {
  service: PushService;
  staging: Staging;
  kept: KeptFiles;
  /** NARs uploaded in parts (eris push). */
  parts: Parts;
  /** Free space of push_dir and the store (doctor, /metrics). */
  disk: DiskGuard;
  /** Recomputes the caches' published sets now (after a new GC root), resolving when done. */
  refreshPublished: () => Promise<void>;
  close(): void;
}

export interface PushOptions {
  /** The whole store (not one cache's view of it). */
  store: Store;
  storeRoot: string;
  storeDir: string;
  /** Every cache's keys: a store under another root is told to trust them for the imports. */
  signers: readonly Signer[];
  log: Logger;
  /** Where import times go (eris_push_import_seconds). */
  metrics?: Pick<Metrics, 'pushImport'>;
  refreshPublished: () => Promise<void>;
  /** The disk guard: writes that would leave less than this free are refused with 507. */
  minFreeBytes: number;
}

export function createPush(config: PushConfig, o: PushOptions): PushDeps {
  mkdirSync(config.dir, { recursive: true, mode: 0o700 });
  const guard = createDiskGuard({ dirs: { push_dir: config.dir, store: join(o.storeRoot, o.storeDir) }, minFreeBytes: o.minFreeBytes });
  const guarded = (label: string) => async (bytes: number) => {
    try {
      await guard.check(label, bytes);
    } catch (e) {
      throw e instanceof DiskFullError ? diskFull((e as Error).message) : e;
    }
  };
  const staging = createStaging({
    dir: config.dir,
    maxBytes: config.stagingMaxBytes,
    ttlMs: config.stagingTtlMs,
    sweepEveryMs: Math.min(60_000, config.stagingTtlMs),
    onSweep: (removed) => o.log.info({ msg: 'push: removed abandoned staged files', removed }),
    beforeWrite: guarded('push_dir'),
  });
  const kept = createKeptFiles({ dir: config.dir, maxBytes: config.keptMaxBytes });
  const importer = createImporter({
    storeUri: config.storeUri,
    storeDir: o.storeDir,
    trust: config.trust,
    trustedKeys: [...new Set(o.signers.map((s) => s.publicKey))],
  });
  const parts = createParts({
    dir: staging.dir,
    maxBytes: config.stagingMaxBytes,
    usedBytes: () => staging.usedBytes(),
    onPart: (p) => o.log.info({ msg: 'push: part received', ...p }),
    onPartAgain: (p) => o.log.info({ msg: 'push: part held already', ...p }),
    beforeWrite: guarded('push_dir'),
  });
  const streams = createStreamImports({
    importer, follow: parts.follow, dir: staging.dir, log: (msg, fields) => o.log.info({ msg, ...fields }),
    isValid: (path) => o.store.isValid(path), // asks the DB each time (refresh() is for lookups, done after the import)
  });
  const service = createPushService({
    store: o.store, storeRoot: o.storeRoot, storeDir: o.storeDir, staging, kept, importer, streams, log: o.log, metrics: o.metrics, beforeImport: guarded('store'),
    onUnknownNar: (cache, file) => parts.discardIncomplete(cache, file),
  });
  return { service, staging, kept, parts, disk: guard, refreshPublished: o.refreshPublished, close: () => {
    staging.close();
    importer.close();
  } };
}
