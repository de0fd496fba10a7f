/**
 * The disk guard: before a push stages or imports anything, the file systems
 * it would write to must keep `min_free_bytes` free after the write. A refusal
 * is 507 Insufficient Storage with one line (Nix, which retries any 5xx a few
 * times with growing pauses, then fails with that line; `eris push` stops at
 * once): a full disk is not fixed in the seconds a 503's Retry-After spans, so
 * 503 would only make clients hammer the box.
 */
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes } from '../../shared/bytes.ts';
import type { Metrics } from '../server/metrics.ts';
import type { OriginConfig } from '../config/index.ts';

export interface DiskSpace {
  /** What the directory is for: `store`, `push_dir`. */
  label: string;
  dir: string;
  /** Bytes an unprivileged writer may still use (f_bavail × f_bsize). */
  free: number;
  total: number;
}

/**
 * Synchronous on purpose: a push checks before it stages and before it imports, path after path, and
 * statfs() takes microseconds where a trip through libuv's thread pool took ~0.3 ms on a loaded box.
 */
export async function diskSpace(label: string, dir: string): Promise<DiskSpace> {
  return { label, dir, ...freeBytes(dir) };
}

export class DiskFullError extends Error {
  override name = 'DiskFullError';
  readonly status = 507;
}

export interface DiskGuard {
  readonly minFreeBytes: number;
  /** Throws DiskFullError when writing `bytes` into `label`'s file system would leave less than min_free_bytes. */
  check(label: string, bytes: number): Promise<void>;
  /** Free space of every guarded directory (doctor, /metrics). */
  spaces(): Promise<DiskSpace[]>;
}

/** Free bytes for an unprivileged writer, and the size, of the file system holding `dir` (doctor, /metrics). */
export function freeBytes(dir: string): { free: number; total: number } {
  const s = statfsSync(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

export function createDiskGuard(o: { dirs: Record<string, string>; minFreeBytes: number; space?: typeof diskSpace }): DiskGuard {
  const space = o.space ?? diskSpace;
  return {
    minFreeBytes: o.minFreeBytes,
    async check(label, bytes) {
      if (o.minFreeBytes <= 0 && bytes <= 0) return;
      const dir = o.dirs[label];
      if (dir === undefined) return;
      const s = await space(label, dir);
      if (s.free - bytes >= o.minFreeBytes) return;
      throw new DiskFullError(
        `not enough disk space: ${label} (${dir}) has ${formatBytes(s.free)} free; this needs ${formatBytes(bytes)} and min_free_bytes keeps ${formatBytes(o.minFreeBytes)} — ` +
          'free space on the box (eris gc --cache NAME --delete, nix-collect-garbage) and push again',
      );
    },
    spaces: () => Promise.all(Object.entries(o.dirs).map(([label, dir]) => space(label, dir))),
  };
}

/** The disk guard's view on /metrics: free space where pushes write (a statfs per scrape; NaN when it fails). */
export function addFreeSpaceGauges(metrics: Pick<Metrics, 'gauges'>, config: Pick<OriginConfig, 'storeRoot' | 'storeDir' | 'push'>): void {
  const free = (dir: string) => () => {
    try {
      return freeBytes(dir).free;
    } catch {
      return NaN;
    }
  };
  metrics.gauges.eris_store_free_bytes = free(join(config.storeRoot, config.storeDir));
  if (config.push) metrics.gauges.eris_push_dir_free_bytes = free(config.push.dir);
}
