/**
 * `eris doctor`'s retention checks: free space where pushes write (the disk guard's view), and each
 * cache's keep_days / max_bytes with where to see what a sweep would do.
 */
import { join } from 'node:path';
import type { OriginConfig } from '../config/index.ts';
import type { Check } from '../cli/doctor/check.ts';
import { freeBytes } from './disk.ts';
import { formatBytes } from '../../shared/bytes.ts';

export function checkRetention(config: Pick<OriginConfig, 'caches'>): Check[] {
  const checks: Check[] = [];
  for (const c of config.caches) {
    if (c.keepDays === undefined && c.maxBytes === undefined) continue;
    const parts = [c.keepDays !== undefined ? `keep_days = ${c.keepDays}` : '', c.maxBytes !== undefined ? `max_bytes = ${formatBytes(c.maxBytes)}` : ''].filter(Boolean);
    checks.push({ status: 'ok', what: `retention ${c.name}`, detail: `${parts.join(', ')}; swept daily by the origin; see eris gc --cache ${c.name} --dry-run` });
  }
  return checks;
}

export function checkDiskSpace(config: Pick<OriginConfig, 'storeRoot' | 'storeDir' | 'push' | 'minFreeBytes'>): Check[] {
  const checks: Check[] = [];
  const dirs: [string, string][] = [['store', join(config.storeRoot, config.storeDir)]];
  if (config.push) dirs.push(['push_dir', config.push.dir]);
  for (const [label, dir] of dirs) {
    const what = `disk space ${label}`;
    try {
      const { free, total } = freeBytes(dir);
      const low = config.push !== undefined && free < config.minFreeBytes;
      const guard = config.push ? `; min_free_bytes ${formatBytes(config.minFreeBytes)}${low ? ' — pushes are refused (507) until space is freed (eris gc --delete, nix-collect-garbage)' : ''}` : '';
      checks.push({ status: low ? 'FAIL' : 'ok', what, detail: `${dir}: ${formatBytes(free)} free of ${formatBytes(total)}${guard}` });
    } catch (e) {
      checks.push({ status: 'FAIL', what, detail: `cannot stat ${dir}: ${(e as NodeJS.ErrnoException).code ?? e}` });
    }
  }
  return checks;
}
