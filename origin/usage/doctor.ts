/**
 * `eris doctor`'s usage check: is usage recorded (state_dir), may this user
 * write there, and what usage.sqlite holds so far.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { OriginConfig } from '../config/index.ts';
import { UsageDb, USAGE_FILE } from './db.ts';
import type { Check } from '../cli/doctor/check.ts';

/** The directory itself, or the nearest parent that exists (where the origin would create it). */
function nearestExisting(p: string): string {
  let d = p;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

export function checkUsage(config: OriginConfig): Check[] {
  const what = 'usage';
  if (config.stateDir === undefined) return [{ status: 'skip', what, detail: 'not recorded: set state_dir (e.g. /var/lib/eris) for `eris usage`' }];
  const dir = config.stateDir;
  const at = nearestExisting(dir);
  if (!statSync(at).isDirectory()) return [{ status: 'FAIL', what, detail: `state_dir ${dir}: ${at} is not a directory` }];
  try {
    accessSync(at, constants.W_OK);
  } catch {
    return [{ status: 'FAIL', what, detail: `state_dir ${dir}: ${at} is not writable by this user; the origin cannot record usage (systemd: StateDirectory=eris)` }];
  }
  if (!existsSync(join(dir, USAGE_FILE))) return [{ status: 'ok', what, detail: `state_dir ${dir} is writable; no usage recorded yet` }];
  try {
    const db = UsageDb.open(dir, { readOnly: true });
    try {
      const days = db.totals({ since: '0000-00-00' }, ['day']).map((r) => r.day!).sort();
      const detail = days.length ? `${join(dir, USAGE_FILE)}: ${days.length} day(s) recorded, ${days[0]} to ${days.at(-1)}, kept ${config.usageRetentionDays} days` : `${join(dir, USAGE_FILE)}: empty so far`;
      return [{ status: 'ok', what, detail }];
    } finally {
      db.close();
    }
  } catch (e) {
    return [{ status: 'FAIL', what, detail: `${join(dir, USAGE_FILE)}: ${(e as Error).message}` }];
  }
}
