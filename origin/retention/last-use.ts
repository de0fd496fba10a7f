/**
 * When each store path was last fetched from a cache, from the usage figures
 * (`usage_paths`, per UTC day): a fetch on day D counts as a use at the end of
 * D, so a root is never judged older than it is.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { USAGE_FILE, UsageDb } from '../usage/db.ts';
import { DAY_MS } from './plan.ts';

export function lastFetches(stateDir: string | undefined, cache: string): Map<string, number> {
  const out = new Map<string, number>();
  if (stateDir === undefined || !existsSync(join(stateDir, USAGE_FILE))) return out;
  const db = UsageDb.open(stateDir, { readOnly: true });
  try {
    for (const { path, day } of db.lastFetchDays(cache)) out.set(path, Date.parse(`${day}T00:00:00Z`) + DAY_MS);
  } finally {
    db.close();
  }
  return out;
}
