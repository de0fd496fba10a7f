/** `eris doctor`'s retention check: each cache's keep_days / max_bytes, and where to see what a sweep would do. */
import type { OriginConfig } from '../config/index.ts';
import type { Check } from '../cli/doctor/check.ts';
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
