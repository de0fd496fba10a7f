/**
 * netrc files, as Nix (through curl) reads them: the credentials for a host
 * are its `machine` entry, else the `default` one; Nix sends them as HTTP
 * Basic. `eris doctor`, `eris client-config`, `eris push` and `npm start` read
 * the token from here.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/validate.ts';

export interface NetrcEntry {
  login?: string;
  password?: string;
}

/** Credentials for `host` from netrc text: the `machine` entry, else `default`. */
export function netrcLookup(text: string, host: string): NetrcEntry | undefined {
  const words = text.split(/\s+/).filter(Boolean);
  let found: NetrcEntry | undefined;
  let fallback: typeof found;
  let current: typeof found;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === 'machine') {
      current = {};
      if (words[++i] === host && !found) found = current;
    } else if (w === 'default') {
      current = {};
      fallback ??= current;
    } else if ((w === 'login' || w === 'password') && current) {
      current[w] = words[++i];
    } else if (w === 'account' || w === 'macdef') i++;
  }
  return found ?? fallback;
}

/** The Authorization header Nix sends for a netrc entry (or a user and token). */
export const basicAuthorization = (login: string | undefined, password: string): string => 'Basic ' + btoa(`${login ?? ''}:${password}`);

/**
 * The entry with a password for `host` in `file` (a `--netrc FILE`): a
 * ConfigError when the file cannot be read or has none; with `optional`,
 * undefined instead (a default place that need not hold one).
 */
export function readNetrcEntry(file: string, host: string, o: { optional?: boolean } = {}): { login?: string; password: string } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (o.optional) return undefined;
    throw new ConfigError(`--netrc: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  const entry = netrcLookup(text, host);
  if (entry?.password) return { login: entry.login, password: entry.password };
  if (o.optional) return undefined;
  throw new ConfigError(`--netrc: ${file} has no "machine ${host} login USER password TOKEN" line`);
}
