/**
 * Origin configuration: a TOML (or JSON) file whose string values may read
 * environment variables as `${NAME}` (write `$$` for a literal `$`), overridden
 * by command-line flags. Parsed and validated once, at start-up; every problem
 * is one line naming the key.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parse as parseToml } from 'smol-toml';
import { defaultLevel, type Compression } from '../compression/compress.ts';
import { PUSH_FILE_KEYS, resolvePushConfig, type PushConfig, type PushRaw } from './push.ts';
import { ConfigError, int, str } from './validate.ts';
import { cacheNameProblem, DEFAULT_CACHE_NAME } from '../../shared/caches.ts';
import { EDGE_SECRET_MIN_LENGTH } from '../../shared/contract.ts';
import { TEMP_ROOTS_MODES, type TempRootsMode } from '../store/temp-roots.ts';
import { RETENTION_CACHE_KEYS, resolveCacheRetention, resolveMinFreeBytes } from './retention.ts';

export { ConfigError } from './validate.ts';

/** One named cache: a published slice of the store, with its own keys and priority. */
export interface CacheConfig {
  name: string;
  /**
   * `roots`: the closures of `roots` plus the GC roots in `<store_root>/nix/var/nix/gcroots/eris/<name>/`;
   * `all`: every valid path in the store.
   */
  publish: 'all' | 'roots';
  /** Store paths, symlinks to store paths (profiles, result links), or directories of such symlinks; read under store_root. */
  roots: string[];
  /** Glob patterns (`*`, `?`) on the name after the hash; a match, and every path whose closure holds one, is not published. */
  exclude: string[];
  signKeyPaths: string[];
  priority: number;
  /** Retention (docs/retention.md): keep a root used within this many days… */
  keepDays?: number;
  /** …and the union of the cache's closures within this many NAR bytes, least recently used first. */
  maxBytes?: number;
}

export interface OriginConfig {
  /** Address and port to listen on; loopback by default (cloudflared connects locally). */
  host: string;
  port: number;
  /** File-system root of the store: `/` for the machine's own store. */
  storeRoot: string;
  /** Logical store directory, as written in store paths. */
  storeDir: string;
  /** Secret key files in Nix's format; every narinfo is signed with each. */
  signKeyPaths: string[];
  /** Shared secret the Worker sends in `x-eris-edge-secret`. */
  edgeSecret: string;
  /** Advertised in nix-cache-info; lower is preferred by Nix. */
  priority: number;
  /** How long a query waits for a write lock held by Nix before answering 503. */
  dbBusyTimeoutMs: number;
  /** How NARs are served: `none` (default), `zstd` (on the fly) or `xz` (needs the xz program). */
  compression: Compression;
  compressionLevel: number;
  /** Directory for the on-disk cache of compressed NARs; none when undefined. */
  narCacheDir?: string;
  narCacheMaxBytes: number;
  /** Origin processes sharing the port (node:cluster); one per core uses the whole machine. */
  workers: number;
  /** Compressions running at once, across all workers; further ones wait in a queue. */
  compressionMax: number;
  /** Compressions that may wait for a place; past that, 503 + Retry-After. */
  compressionQueue: number;
  /** NAR responses streaming at once, per process; past that, 503 + Retry-After. */
  maxNarStreams: number;
  /** Requests being handled at once (NAR bodies not counted once they stream), per process; past that, 503 + Retry-After. */
  maxPendingRequests: number;
  /** Directory for the origin's own state (usage.sqlite); usage is not recorded when undefined. */
  stateDir?: string;
  /** Days of usage figures kept. */
  usageRetentionDays: number;
  /** The caches served; without `[[cache]]` tables, one cache `default` publishing the whole store. */
  caches: CacheConfig[];
  /** The cache the bare paths (`/nix-cache-info`, `/<hash>.narinfo`) serve; undefined: none. */
  defaultCache: string | undefined;
  /** HTTP push (`nix copy --to https://…`); off when undefined (no push_dir). */
  push?: PushConfig;
  /** A second listener that answers only GET /metrics, without any credential (for a stock Prometheus scrape); none when undefined. */
  metricsBind?: { host: string; port: number };
  /** A bearer credential that opens /metrics on the main port (`Authorization: Bearer …`), read from metrics_token_file. */
  metricsToken?: string;
  /** How NARs being served are protected from Nix's GC: temporary roots through a daemon (store/temp-roots.ts). */
  tempRoots: TempRootsMode;
  /** Pushes that would leave less free space than this on the store's or push_dir's file system are refused (507). */
  minFreeBytes: number;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8788,
  storeRoot: '/',
  storeDir: '/nix/store',
  priority: 30,
  dbBusyTimeoutMs: 2000,
  narCacheMaxBytes: 10 * 1024 ** 3,
  usageRetentionDays: 90,
  compressionQueue: 64,
  maxNarStreams: 256,
  maxPendingRequests: 1024,
} as const;

/** Keys a config file may hold, with the field each fills. */
const FILE_KEYS = {
  bind: 'bind',
  store_root: 'storeRoot',
  store_dir: 'storeDir',
  sign_key_paths: 'signKeyPaths',
  edge_secret: 'edgeSecret',
  edge_secret_file: 'edgeSecretFile',
  priority: 'priority',
  db_busy_timeout_ms: 'dbBusyTimeoutMs',
  compression: 'compression',
  compression_level: 'compressionLevel',
  nar_cache_dir: 'narCacheDir',
  nar_cache_max_bytes: 'narCacheMaxBytes',
  workers: 'workers',
  compression_max: 'compressionMax',
  compression_queue: 'compressionQueue',
  max_nar_streams: 'maxNarStreams',
  max_pending_requests: 'maxPendingRequests',
  state_dir: 'stateDir',
  usage_retention_days: 'usageRetentionDays',
  cache: 'caches',
  default_cache: 'defaultCache',
  metrics_bind: 'metricsBind',
  metrics_token_file: 'metricsTokenFile',
  temp_roots: 'tempRoots',
  min_free_bytes: 'minFreeBytes',
  ...PUSH_FILE_KEYS,
} as const;

/** Keys of a `[[cache]]` table. */
const CACHE_KEYS = ['name', 'publish', 'roots', 'exclude', 'sign_key_paths', 'priority', ...RETENTION_CACHE_KEYS] as const;

/** Values from a config file or flags, before validation. */
export type Raw = Partial<Record<(typeof FILE_KEYS)[keyof typeof FILE_KEYS], unknown>>;

/** Replace `${NAME}` with the environment's value; `$$` is a literal `$`. */
export function interpolate(value: string, env: Record<string, string | undefined>, key: string): string {
  return value.replace(/\$\$|\$\{([^}]*)\}|\$/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    if (m === '$') return '$';
    if (!name || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError(`${key}: bad variable reference ${m}`);
    const v = env[name];
    if (v === undefined) throw new ConfigError(`${key}: environment variable ${name} is not set`);
    return v;
  });
}

function interpolateAll(value: unknown, env: Record<string, string | undefined>, key: string): unknown {
  if (typeof value === 'string') return interpolate(value, env, key);
  if (Array.isArray(value)) return value.map((v, i) => interpolateAll(v, env, `${key}[${i}]`));
  if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, env, `${key}.${k}`)]));
  }
  return value;
}

/** Parse a config file's text (TOML, or JSON when the name ends in .json). */
export function parseConfigFile(text: string, fileName: string, env: Record<string, string | undefined>): Raw {
  let data: Record<string, unknown>;
  try {
    data = fileName.endsWith('.json') ? JSON.parse(text) : (parseToml(text) as Record<string, unknown>);
  } catch (e) {
    throw new ConfigError(`${fileName}: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ConfigError(`${fileName}: not a table`);
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (!(k in FILE_KEYS)) throw new ConfigError(`${fileName}: unknown key "${k}" (known: ${Object.keys(FILE_KEYS).join(', ')})`);
    raw[FILE_KEYS[k as keyof typeof FILE_KEYS]] = interpolateAll(v, env, k);
  }
  return raw as Raw;
}

export function parseBind(key: string, v: unknown): { host: string; port: number } {
  const s = str(key, v);
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:\[\]]+)):(\d+)$/.exec(s);
  if (!m) throw new ConfigError(`${key}: expected HOST:PORT, e.g. 127.0.0.1:8788`);
  return { host: m[1] ?? m[2]!, port: int(key, m[3], 0, 65535) };
}

/** `metrics_bind`: HOST:PORT, or a bare PORT on loopback (the listener has no credential: keep it off the internet). */
export function parseMetricsBind(v: unknown): { host: string; port: number } {
  if (typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v))) return { host: DEFAULTS.host, port: int('metrics_bind', v, 0, 65535) };
  return parseBind('metrics_bind', v);
}

function readSecretFile(key: string, path: string, readFile: (p: string) => string): string {
  let text: string;
  try {
    text = readFile(path).trim();
  } catch (e) {
    throw new ConfigError(`${key}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (text.length < 16) throw new ConfigError(`${key}: ${path} must hold at least 16 characters`);
  if (/\s/.test(text)) throw new ConfigError(`${key}: ${path} must hold one token without spaces`);
  return text;
}

export interface ConfigSources {
  /** Values from the config file, already interpolated. */
  file?: Raw;
  /** Values from flags; they win over the file. */
  flags?: Raw;
  env: Record<string, string | undefined>;
  readFile?: (path: string) => string;
}

/** Merge file, flags and environment into one validated config. */
export function resolveConfig({ file = {}, flags = {}, env, readFile = (p) => readFileSync(p, 'utf8') }: ConfigSources): OriginConfig {
  const raw: Raw = { ...file };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) (raw as Record<string, unknown>)[k] = v;

  const bind = raw.bind === undefined ? { host: DEFAULTS.host, port: DEFAULTS.port } : parseBind('bind', raw.bind);
  const storeRoot = raw.storeRoot === undefined ? DEFAULTS.storeRoot : str('store_root', raw.storeRoot);
  const storeDir = raw.storeDir === undefined ? DEFAULTS.storeDir : str('store_dir', raw.storeDir);
  if (!storeDir.startsWith('/') || storeDir.endsWith('/')) throw new ConfigError('store_dir: expected an absolute path without a trailing slash');

  const keys = raw.signKeyPaths ?? [];
  if (!Array.isArray(keys)) throw new ConfigError('sign_key_paths: expected a list of secret key files');
  // With [[cache]] tables that each name their own keys, the top-level list may be left out.
  const everyCacheHasKeys = Array.isArray(raw.caches) && raw.caches.length > 0 &&
    raw.caches.every((c) => typeof c === 'object' && c !== null && (c as Record<string, unknown>).sign_key_paths !== undefined);
  if (keys.length === 0 && !everyCacheHasKeys) throw new ConfigError('sign_key_paths: at least one secret key file is required (make one with `eris keygen NAME`)');
  const signKeyPaths = keys.map((k, i) => str(`sign_key_paths[${i}]`, k));

  let edgeSecret: string | undefined;
  if (raw.edgeSecret !== undefined && raw.edgeSecretFile !== undefined) throw new ConfigError('edge_secret and edge_secret_file: set only one');
  if (raw.edgeSecret !== undefined) edgeSecret = str('edge_secret', raw.edgeSecret);
  else if (raw.edgeSecretFile !== undefined) {
    const path = str('edge_secret_file', raw.edgeSecretFile);
    try {
      edgeSecret = readFile(path).trim();
    } catch (e) {
      throw new ConfigError(`edge_secret_file: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  } else if (env.ERIS_EDGE_SECRET) edgeSecret = env.ERIS_EDGE_SECRET;
  if (!edgeSecret) throw new ConfigError('edge_secret: required (edge_secret, edge_secret_file or $ERIS_EDGE_SECRET)');
  if (edgeSecret.length < EDGE_SECRET_MIN_LENGTH) throw new ConfigError(`edge_secret: must be at least ${EDGE_SECRET_MIN_LENGTH} characters`);

  const priority = raw.priority === undefined ? DEFAULTS.priority : int('priority', raw.priority, 0, 1_000_000);
  const stateDir = raw.stateDir === undefined ? undefined : str('state_dir', raw.stateDir);
  const usageRetentionDays = raw.usageRetentionDays === undefined ? DEFAULTS.usageRetentionDays : int('usage_retention_days', raw.usageRetentionDays, 1, 3650);
  const caches = resolveCaches(raw.caches, signKeyPaths, priority, true, { stateDir, usageRetentionDays });
  const defaultCache = resolveDefaultCache(raw.defaultCache, caches);

  const compression = raw.compression === undefined ? 'none' : str('compression', raw.compression);
  if (compression !== 'none' && compression !== 'zstd' && compression !== 'xz') throw new ConfigError('compression: expected "none", "zstd" or "xz"');
  const [minLevel, maxLevel] = compression === 'xz' ? [0, 9] : [1, 19];

  return {
    host: bind.host,
    port: bind.port,
    storeRoot,
    storeDir,
    signKeyPaths,
    edgeSecret,
    priority,
    dbBusyTimeoutMs: raw.dbBusyTimeoutMs === undefined ? DEFAULTS.dbBusyTimeoutMs : int('db_busy_timeout_ms', raw.dbBusyTimeoutMs, 0, 60_000),
    compression,
    compressionLevel: raw.compressionLevel === undefined ? defaultLevel(compression) : int('compression_level', raw.compressionLevel, minLevel, maxLevel),
    narCacheDir: raw.narCacheDir === undefined ? undefined : str('nar_cache_dir', raw.narCacheDir),
    narCacheMaxBytes: raw.narCacheMaxBytes === undefined ? DEFAULTS.narCacheMaxBytes : int('nar_cache_max_bytes', raw.narCacheMaxBytes, 0, Number.MAX_SAFE_INTEGER),
    workers: raw.workers === undefined ? 1 : int('workers', raw.workers, 1, 64),
    compressionMax: raw.compressionMax === undefined ? availableParallelism() : int('compression_max', raw.compressionMax, 1, 1024),
    compressionQueue: raw.compressionQueue === undefined ? DEFAULTS.compressionQueue : int('compression_queue', raw.compressionQueue, 0, 100_000),
    maxNarStreams: raw.maxNarStreams === undefined ? DEFAULTS.maxNarStreams : int('max_nar_streams', raw.maxNarStreams, 1, 1_000_000),
    maxPendingRequests: raw.maxPendingRequests === undefined ? DEFAULTS.maxPendingRequests : int('max_pending_requests', raw.maxPendingRequests, 1, 1_000_000),
    stateDir,
    usageRetentionDays,
    caches,
    defaultCache,
    push: resolvePushConfig(raw as PushRaw, storeRoot),
    metricsBind: raw.metricsBind === undefined ? undefined : parseMetricsBind(raw.metricsBind),
    metricsToken: raw.metricsTokenFile === undefined ? undefined : readSecretFile('metrics_token_file', str('metrics_token_file', raw.metricsTokenFile), readFile),
    tempRoots: resolveTempRoots(raw.tempRoots),
    minFreeBytes: resolveMinFreeBytes(raw.minFreeBytes, fail),
  };
}

const fail = (message: string): never => {
  throw new ConfigError(message);
};

function resolveTempRoots(v: unknown): TempRootsMode {
  if (v === undefined) return 'auto';
  if (TEMP_ROOTS_MODES.includes(v as TempRootsMode)) return v as TempRootsMode;
  throw new ConfigError(`temp_roots: expected ${TEMP_ROOTS_MODES.map((m) => `"${m}"`).join(', ')}`);
}

const strList = (key: string, v: unknown): string[] => {
  if (!Array.isArray(v)) throw new ConfigError(`${key}: expected a list of strings`);
  return v.map((x, i) => str(`${key}[${i}]`, x));
};

/** The `[[cache]]` tables; none means one cache `default` publishing the whole store with the top-level keys and priority. */
export function resolveCaches(
  value: unknown,
  topKeys: string[],
  topPriority: number,
  requireKeys = true,
  ctx: { stateDir: string | undefined; usageRetentionDays: number } = { stateDir: undefined, usageRetentionDays: DEFAULTS.usageRetentionDays },
): CacheConfig[] {
  if (value === undefined) return [{ name: DEFAULT_CACHE_NAME, publish: 'all', roots: [], exclude: [], signKeyPaths: topKeys, priority: topPriority }];
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError('cache: expected [[cache]] tables (a list of tables)');
  const seen = new Set<string>();
  return value.map((t, i): CacheConfig => {
    const at = `cache[${i}]`;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) throw new ConfigError(`${at}: expected a table`);
    const o = t as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!(CACHE_KEYS as readonly string[]).includes(k)) throw new ConfigError(`${at}: unknown key "${k}" (known: ${CACHE_KEYS.join(', ')})`);
    }
    const name = str(`${at}.name`, o.name);
    const problem = cacheNameProblem(name);
    if (problem) throw new ConfigError(`${at}.name: ${problem}`);
    if (seen.has(name)) throw new ConfigError(`${at}.name: "${name}" names two caches`);
    seen.add(name);
    const publish = o.publish === undefined ? 'roots' : str(`${at}.publish`, o.publish);
    if (publish !== 'all' && publish !== 'roots') throw new ConfigError(`${at}.publish: expected "all" or "roots"`);
    const roots = o.roots === undefined ? [] : strList(`${at}.roots`, o.roots);
    if (publish === 'all' && roots.length) throw new ConfigError(`${at}.roots: not used with publish = "all" (which publishes every valid path)`);
    roots.forEach((r, j) => {
      if (!r.startsWith('/')) throw new ConfigError(`${at}.roots[${j}]: expected an absolute path (read under store_root)`);
    });
    const exclude = o.exclude === undefined ? [] : strList(`${at}.exclude`, o.exclude);
    exclude.forEach((p, j) => {
      if (p.includes('/')) throw new ConfigError(`${at}.exclude[${j}]: a pattern matches the name after the hash, so it cannot hold "/"`);
    });
    const signKeyPaths = o.sign_key_paths === undefined ? topKeys : strList(`${at}.sign_key_paths`, o.sign_key_paths);
    if (requireKeys && !signKeyPaths.length) throw new ConfigError(`${at}.sign_key_paths: at least one secret key file is required (here or at the top level)`);
    const priority = o.priority === undefined ? topPriority : int(`${at}.priority`, o.priority, 0, 1_000_000);
    return { name, publish, roots, exclude, signKeyPaths, priority, ...resolveCacheRetention(at, o, { ...ctx, fail }) };
  });
}

/** The bare root's cache: default_cache, else the only cache, else the one named `default`, else none. */
function resolveDefaultCache(value: unknown, caches: CacheConfig[]): string | undefined {
  if (value !== undefined) {
    const name = str('default_cache', value);
    if (!caches.some((c) => c.name === name)) throw new ConfigError(`default_cache: no [[cache]] is named "${name}" (caches: ${caches.map((c) => c.name).join(', ')})`);
    return name;
  }
  if (caches.length === 1) return caches[0]!.name;
  return caches.find((c) => c.name === DEFAULT_CACHE_NAME)?.name;
}

/** The `[[cache]]` tables of a config file, for commands that sign nothing (`eris publish`, `eris gc`): keys not required. */
export function cachesOfFile(file: Raw): CacheConfig[] {
  return resolveCaches(file.caches, [], 0, false, {
    stateDir: typeof file.stateDir === 'string' ? file.stateDir : undefined,
    usageRetentionDays: typeof file.usageRetentionDays === 'number' ? file.usageRetentionDays : DEFAULTS.usageRetentionDays,
  });
}

/** Read the config file (if any), then merge it with flags and the environment: what `serve` and `doctor` use. */
export function loadConfig(o: { configFile?: string; flags?: Raw; env: Record<string, string | undefined> }): OriginConfig {
  const file = o.configFile ? readConfigFile(o.configFile, o.env) : undefined;
  return resolveConfig({ file, flags: o.flags, env: o.env });
}

/** The config file's keys, parsed but not yet merged or resolved; a file that cannot be read is a ConfigError. */
export function readConfigFile(path: string, env: Record<string, string | undefined>): Raw {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return parseConfigFile(text, path, env);
}
