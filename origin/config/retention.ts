/**
 * Retention keys: `keep_days` and `max_bytes` in a `[[cache]]` table, and the
 * top-level `min_free_bytes` (the disk guard). Validated once, at config load.
 */

export const RETENTION_CACHE_KEYS = ['keep_days', 'max_bytes'] as const;

/** Refuse pushes that would leave less than this free (bytes) on the store's or push_dir's file system. */
export const DEFAULT_MIN_FREE_BYTES = 1024 ** 3;

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * A byte count: a whole number, or a string with a K, M, G or T suffix (powers of 1024, as Nix's own
 * `min-free`), optionally followed by `iB`/`B`: `10737418240`, `"10G"`, `"10 GiB"`. Undefined when malformed.
 */
export function parseBytes(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(v);
  if (!m) return undefined;
  const n = Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  return Number.isSafeInteger(n) ? n : undefined;
}

export interface CacheRetention {
  keepDays?: number;
  maxBytes?: number;
}

/** The retention keys of one `[[cache]]` table (`at`: `cache[1]`); `fail` throws the config's error type. */
export function resolveCacheRetention(
  at: string,
  o: Record<string, unknown>,
  ctx: { stateDir: string | undefined; usageRetentionDays: number; fail: (message: string) => never },
): CacheRetention {
  const out: CacheRetention = {};
  if (o.keep_days !== undefined) {
    const n = o.keep_days;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 3650) ctx.fail(`${at}.keep_days: expected a whole number of days from 1 to 3650`);
    if (n > ctx.usageRetentionDays) {
      ctx.fail(`${at}.keep_days: ${n} is longer than usage_retention_days (${ctx.usageRetentionDays}): fetches older than that are forgotten, so roots in use would be dropped; raise usage_retention_days`);
    }
    out.keepDays = n;
  }
  if (o.max_bytes !== undefined) {
    const n = parseBytes(o.max_bytes);
    if (n === undefined || n < 1) ctx.fail(`${at}.max_bytes: expected a number of bytes, e.g. 53687091200 or "50G"`);
    out.maxBytes = n;
  }
  if ((out.keepDays !== undefined || out.maxBytes !== undefined) && ctx.stateDir === undefined) {
    ctx.fail(`${at}: keep_days and max_bytes need state_dir (retention reads when each path was last fetched from <state_dir>/usage.sqlite)`);
  }
  return out;
}

export function resolveMinFreeBytes(v: unknown, fail: (message: string) => never): number {
  if (v === undefined) return DEFAULT_MIN_FREE_BYTES;
  const n = parseBytes(v);
  if (n === undefined) fail('min_free_bytes: expected a number of bytes, e.g. 1073741824 or "1G" (0 turns the check off)');
  return n;
}
