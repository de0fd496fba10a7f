/**
 * What a Nix client needs to use eris caches: nix.conf lines and a netrc
 * line. Pure; the edge (GET /v1/cache-config, the landing page, the 401
 * body) and `eris client-config` all render them here, so they say the same.
 */
import { isCacheEntry, type CacheEntry } from './cache-listing.ts';

/** A cache as a client sees it: a `/v1/caches` entry at the edge, with its substituter URL. */
export interface ClientCache extends CacheEntry {
  /** The substituter URL: `https://<edge>/<name>`. */
  url: string;
}

/** GET /v1/cache-config at the edge. */
export interface CacheConfig {
  /** The token's user. */
  user: string;
  /** The host name a netrc `machine` entry must name. */
  host: string;
  caches: ClientCache[];
  /** nix.conf lines (extra-*, so cache.nixos.org stays), ending in a newline. */
  nixConf: string;
  /** The netrc line, with `<token>` where the token goes. */
  netrc: string;
}

/** A GET /v1/cache-config body, checked; throws when it is not one. Caches without their fields are left out. */
export function parseCacheConfig(text: string): CacheConfig {
  const cfg = JSON.parse(text) as Partial<CacheConfig>;
  if (!Array.isArray(cfg.caches) || typeof cfg.user !== 'string' || typeof cfg.host !== 'string') throw new Error('unexpected shape');
  return { ...cfg, caches: cfg.caches.filter((c): c is ClientCache => isCacheEntry(c) && typeof (c as Partial<ClientCache>).url === 'string') } as CacheConfig;
}

export const DEFAULT_NETRC_PATH = '/etc/nix/netrc';

/** Where multi-user Nix reads the netrc and what mode it needs, in one line. */
export const NETRC_NOTE =
  'Multi-user Nix: the nix-daemon (root) does the downloads and reads the netrc-file named in /etc/nix/nix.conf; make the netrc root-owned, mode 0600 (chmod 0600 /etc/nix/netrc), and restart nix-daemon.';

/** nix.conf lines for these caches. `extra-` keeps Nix's defaults (cache.nixos.org) in place. */
export function renderNixConf(caches: readonly Pick<ClientCache, 'url' | 'publicKeys'>[], netrcPath: string | null = DEFAULT_NETRC_PATH): string {
  const keys = [...new Set(caches.flatMap((c) => c.publicKeys))];
  const lines = [`extra-substituters = ${caches.map((c) => c.url).join(' ')}`, `extra-trusted-public-keys = ${keys.join(' ')}`];
  if (netrcPath !== null) lines.push(`netrc-file = ${netrcPath}`);
  return lines.join('\n') + '\n';
}

/** The netrc line Nix sends as HTTP Basic (login = user, password = token). */
export const renderNetrcLine = (host: string, user: string, token = '<token>'): string => `machine ${host} login ${user} password ${token}`;

/** The one-line body of the edge's 401: what a netrc entry must contain. */
export const unauthorizedBody = (host: string): string =>
  `authentication required: Nix sends the token from a netrc entry "${renderNetrcLine(host, '<user>')}" (the file nix.conf's netrc-file names, /etc/nix/netrc by default)\n`;
