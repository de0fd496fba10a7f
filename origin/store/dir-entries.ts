import { readdirSync } from 'node:fs';

/**
 * A directory's entry names; none when it does not exist or cannot be read (a cache with no roots yet,
 * a pin never made, a temp dir another user owns): the listings of eris's own directories all treat those alike.
 */
export function dirEntries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
