/**
 * `eris client-config --edge-url URL (--token T | --netrc FILE) [--netrc-path PATH] [--json]`:
 * asks the edge's GET /v1/cache-config with the token and prints nix.conf
 * lines for every cache the token may use (extra-*, so cache.nixos.org
 * stays), the netrc line with the token, and where multi-user Nix reads it.
 */
import { ConfigError } from '../config/index.ts';
import { basicAuthorization, readNetrcEntry } from './netrc.ts';
import { parseCommandArgs, type CliIo } from './args.ts';
import { DEFAULT_NETRC_PATH, NETRC_NOTE, parseCacheConfig, renderNetrcLine, renderNixConf, type CacheConfig } from '../../shared/client-config.ts';

export const CLIENT_CONFIG_USAGE = 'usage: eris client-config --edge-url URL (--token TOKEN | --netrc FILE) [--netrc-path PATH] [--json]';

/** The text to paste: a nix.conf block, a blank line, the netrc line, the note. */
export function formatClientConfig(cfg: CacheConfig, token: string, netrcPath: string): string {
  return [
    `# nix.conf (/etc/nix/nix.conf, or ~/.config/nix/nix.conf for single-user Nix): ${cfg.caches.map((c) => c.name).join(', ')}`,
    renderNixConf(cfg.caches, netrcPath).trimEnd(),
    '',
    `# netrc (${netrcPath})`,
    renderNetrcLine(cfg.host, cfg.user, token),
    '',
    `# ${NETRC_NOTE}`,
    '',
  ].join('\n');
}

const OPTIONS = {
  'edge-url': { type: 'string' },
  token: { type: 'string' },
  netrc: { type: 'string' },
  'netrc-path': { type: 'string', default: DEFAULT_NETRC_PATH },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

export async function run(argv: string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, true);
  if (positionals.length || !values['edge-url'] || (values.token === undefined) === (values.netrc === undefined)) throw new ConfigError(CLIENT_CONFIG_USAGE);
  let edge: URL;
  try {
    edge = new URL(values['edge-url']);
  } catch {
    throw new ConfigError(`--edge-url: not a URL: ${values['edge-url']}`);
  }
  let token = values.token;
  let auth = `Bearer ${token}`;
  if (values.netrc !== undefined) {
    const entry = readNetrcEntry(values.netrc, edge.hostname)!;
    token = entry.password;
    auth = basicAuthorization(entry.login, token);
  }
  const url = new URL('v1/cache-config', edge.href.endsWith('/') ? edge.href : edge.href + '/');
  const timeoutMs = values.timeout === undefined ? 10_000 : Number(values.timeout) * 1000;
  let res: Response;
  try {
    res = await fetch(url, { headers: { Authorization: auth }, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  } catch (e) {
    throw new Error(`${url}: ${(e as Error).cause ? String((e as Error & { cause: Error }).cause.message ?? (e as Error).cause) : (e as Error).message}`);
  }
  const body = await res.text();
  if (res.status === 401) throw new Error(`${url}: 401: the edge refused the token (${values.netrc ? `from ${values.netrc}` : '--token'})`);
  if (res.status !== 200) throw new Error(`${url}: ${res.status}: ${body.split('\n')[0]}`);
  let cfg: CacheConfig;
  try {
    cfg = parseCacheConfig(body);
  } catch (e) {
    throw new Error(`${url}: not a cache configuration (${(e as Error).message}); is this an eris edge?`);
  }
  if (!cfg.caches.length) throw new Error(`${url}: the token may use no cache`);
  if (values.json) {
    io.stdout.write(JSON.stringify({ ...cfg, nixConf: renderNixConf(cfg.caches, values['netrc-path']), netrc: renderNetrcLine(cfg.host, cfg.user, token) }, null, 2) + '\n');
    return;
  }
  io.stdout.write(formatClientConfig(cfg, token!, values['netrc-path']));
}
