import type { Env } from './env.ts';
import { DEFAULT_MAX_UPLOAD_BYTES } from './middleware/upload-limit/index.ts';
import { cacheNameProblem, DEFAULT_CACHE_NAME } from '../shared/caches.ts';
import { EDGE_SECRET_MIN_LENGTH } from '../shared/contract.ts';
import { OidcTrustError, parseOidcTrust, type OidcTrust } from '../shared/oidc-trust.ts';

/** One origin the edge fronts, in priority order. */
export interface OriginSpec {
  /** Names it in logs, in the narinfo's NAR URL, and in ORIGINS. */
  id: string;
  /** Scheme, host and optional path prefix, without a trailing slash. */
  url: string;
  /** Name of the Workers VPC service binding to reach it through, if any. */
  binding?: string;
  /** The secret sent in the edge-secret header (from the Worker secret named in ORIGINS, EDGE_SECRET by default). */
  edgeSecret: string;
}

export interface EdgeConfig {
  /** At least one; a single ORIGIN_URL is one origin with id "origin". */
  origins: OriginSpec[];
  /** With several origins: how long a metadata request waits on one origin before also asking the next, ms (0: only after it failed). */
  hedgeMs: number;
  allowAnonymous: boolean;
  metadataTimeoutMs: number;
  narTimeoutMs: number;
  /** Largest PUT body accepted (MAX_UPLOAD_BYTES), and how long the origin may take to answer one. */
  maxUploadBytes: number;
  pushTimeoutMs: number;
  realm: string;
  /** The cache of the bare paths: tokens without a cache list may use only this one. */
  defaultCache: string;
  /** Circuit breaker: consecutive origin failures that open it, and how long it stays open. */
  breaker: { threshold: number; cooldownMs: number };
  /** Cloudflare Access service token for the origin hostname, if it is protected by Access. */
  access?: { clientId: string; clientSecret: string };
  /** How long the isolate keeps a token lookup (TOKEN_CACHE_SECONDS), ms; 0: every request reads KV. */
  tokenCacheMs: number;
  /** CI identity tokens exchanged for short-lived eris tokens (OIDC_TRUST and OIDC_TOKEN_SECRET); absent: no exchange. */
  oidc?: { trust: OidcTrust; secret: string };
}

export class EdgeConfigError extends Error {
  override name = 'EdgeConfigError';
}

function bytes(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new EdgeConfigError(`${name} must be a whole number of bytes (at least 1)`);
  return n;
}

function ms(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 100 || n > 600_000) throw new EdgeConfigError(`${name} must be a whole number of milliseconds (100..600000)`);
  return n;
}

function seconds(name: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new EdgeConfigError(`${name} must be a whole number of seconds (0..${max})`);
  return n;
}

function count(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new EdgeConfigError(`${name} must be a whole number from 1 to 1000`);
  return n;
}

const ORIGIN_ID_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function originUrl(key: string, value: unknown): string {
  let url: URL;
  try {
    url = new URL(typeof value === 'string' ? value : '');
  } catch {
    throw new EdgeConfigError(`${key} is not set to an http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EdgeConfigError(`${key} must be http(s)`);
  if (url.search || url.hash) throw new EdgeConfigError(`${key} must not have a query or fragment`);
  return url.origin + url.pathname.replace(/\/+$/, '');
}

function secretNamed(env: Env, key: string, name: string): string {
  const value = (env as unknown as Record<string, unknown>)[name];
  if (typeof value !== 'string' || value.length < EDGE_SECRET_MIN_LENGTH) {
    throw new EdgeConfigError(`${key}: ${name} is missing or shorter than ${EDGE_SECRET_MIN_LENGTH} characters (wrangler secret put ${name})`);
  }
  return value;
}

/**
 * ORIGINS: a JSON array (a string, or a TOML array in wrangler.toml's
 * [vars]) of { "id", "url", "binding"?, "secret"? } in priority order;
 * `secret` names the Worker secret holding that origin's edge secret
 * (default EDGE_SECRET), `binding` a VPC service binding. Without ORIGINS,
 * ORIGIN_URL (and the ORIGIN binding, when bound) is the one origin.
 */
function parseOrigins(env: Env): OriginSpec[] {
  const raw = env.ORIGINS;
  if (raw === undefined || raw === '') {
    const url = originUrl('ORIGIN_URL', env.ORIGIN_URL);
    if (!env.EDGE_SECRET || env.EDGE_SECRET.length < EDGE_SECRET_MIN_LENGTH) throw new EdgeConfigError(`EDGE_SECRET is missing or shorter than ${EDGE_SECRET_MIN_LENGTH} characters (wrangler secret put EDGE_SECRET)`);
    return [{ id: 'origin', url, binding: env.ORIGIN ? 'ORIGIN' : undefined, edgeSecret: env.EDGE_SECRET }];
  }
  let list: unknown = raw;
  if (typeof raw === 'string') {
    try {
      list = JSON.parse(raw);
    } catch {
      throw new EdgeConfigError('ORIGINS must be a JSON array of {"id", "url", "binding"?, "secret"?}');
    }
  }
  if (!Array.isArray(list) || list.length === 0) throw new EdgeConfigError('ORIGINS must be a non-empty array of {"id", "url", "binding"?, "secret"?}');
  if (list.length > 16) throw new EdgeConfigError('ORIGINS: at most 16 origins');
  const seen = new Set<string>();
  return list.map((entry: unknown, i): OriginSpec => {
    const key = `ORIGINS[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new EdgeConfigError(`${key} must be an object {"id", "url", "binding"?, "secret"?}`);
    const o = entry as Record<string, unknown>;
    const unknown = Object.keys(o).find((k) => !['id', 'url', 'binding', 'secret'].includes(k));
    if (unknown) throw new EdgeConfigError(`${key}.${unknown}: unknown key (id, url, binding, secret)`);
    if (typeof o.id !== 'string' || !ORIGIN_ID_RE.test(o.id)) throw new EdgeConfigError(`${key}.id must be 1-32 of a-z 0-9 _ - (starting with a letter or digit)`);
    if (seen.has(o.id)) throw new EdgeConfigError(`${key}.id: "${o.id}" is used twice`);
    seen.add(o.id);
    const url = originUrl(`${key}.url`, o.url);
    let binding: string | undefined;
    if (o.binding !== undefined) {
      if (typeof o.binding !== 'string' || !ENV_NAME_RE.test(o.binding)) throw new EdgeConfigError(`${key}.binding must name a binding`);
      const bound = (env as unknown as Record<string, unknown>)[o.binding] as { fetch?: unknown } | undefined;
      if (typeof bound?.fetch !== 'function') throw new EdgeConfigError(`${key}.binding: no service binding named ${o.binding} ([[vpc_services]] in wrangler.toml)`);
      binding = o.binding;
    }
    const secretName = o.secret === undefined ? 'EDGE_SECRET' : o.secret;
    if (typeof secretName !== 'string' || !ENV_NAME_RE.test(secretName)) throw new EdgeConfigError(`${key}.secret must name a Worker secret`);
    return { id: o.id, url, binding, edgeSecret: secretNamed(env, `${key}.secret`, secretName) };
  });
}

/** OIDC_TRUST (shared/oidc-trust.ts) with the secret that signs exchanged tokens. */
function parseOidc(env: Env): EdgeConfig['oidc'] {
  // Without trust rules there is no exchange, and every token it handed out is refused (a secret alone does nothing).
  if (env.OIDC_TRUST === undefined || env.OIDC_TRUST === '') return undefined;
  let trust: OidcTrust;
  try {
    trust = parseOidcTrust(env.OIDC_TRUST);
  } catch (err) {
    if (err instanceof OidcTrustError) throw new EdgeConfigError(err.message);
    throw err;
  }
  const secret = env.OIDC_TOKEN_SECRET;
  if (typeof secret !== 'string' || secret.length < 32) {
    throw new EdgeConfigError('OIDC_TRUST needs OIDC_TOKEN_SECRET of at least 32 characters, which signs exchanged tokens (wrangler secret put OIDC_TOKEN_SECRET)');
  }
  return { trust, secret };
}

/** Validates the Worker's environment once per isolate. */
export function parseEdgeConfig(env: Env): EdgeConfig {
  const origins = parseOrigins(env);
  const anon = (env.ALLOW_ANONYMOUS ?? 'false').toLowerCase();
  if (anon !== 'true' && anon !== 'false') throw new EdgeConfigError('ALLOW_ANONYMOUS must be "true" or "false"');
  if (!!env.ACCESS_CLIENT_ID !== !!env.ACCESS_CLIENT_SECRET) {
    throw new EdgeConfigError('ACCESS_CLIENT_ID and ACCESS_CLIENT_SECRET go together (wrangler secret put both, or neither)');
  }
  const defaultCache = env.DEFAULT_CACHE || DEFAULT_CACHE_NAME;
  const problem = cacheNameProblem(defaultCache);
  if (problem) throw new EdgeConfigError(`DEFAULT_CACHE: ${problem}`);
  return {
    defaultCache,
    access: env.ACCESS_CLIENT_ID ? { clientId: env.ACCESS_CLIENT_ID, clientSecret: env.ACCESS_CLIENT_SECRET! } : undefined,
    origins,
    hedgeMs: env.HEDGE_MS === '0' ? 0 : ms('HEDGE_MS', env.HEDGE_MS, 300),
    allowAnonymous: anon === 'true',
    metadataTimeoutMs: ms('ORIGIN_TIMEOUT_MS', env.ORIGIN_TIMEOUT_MS, 10_000),
    narTimeoutMs: ms('NAR_TIMEOUT_MS', env.NAR_TIMEOUT_MS, 30_000),
    maxUploadBytes: bytes('MAX_UPLOAD_BYTES', env.MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
    pushTimeoutMs: ms('PUSH_TIMEOUT_MS', env.PUSH_TIMEOUT_MS, 300_000),
    realm: env.REALM || 'eris',
    tokenCacheMs: seconds('TOKEN_CACHE_SECONDS', env.TOKEN_CACHE_SECONDS, 5, 60) * 1000,
    oidc: parseOidc(env),
    breaker: {
      threshold: count('BREAKER_THRESHOLD', env.BREAKER_THRESHOLD, 5),
      cooldownMs: ms('BREAKER_COOLDOWN_MS', env.BREAKER_COOLDOWN_MS, 5_000),
    },
  };
}
