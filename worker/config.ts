import type { Env } from './env.ts';
import { cacheNameProblem } from '../shared/caches.ts';

export interface EdgeConfig {
  originUrl: string;
  edgeSecret: string;
  allowAnonymous: boolean;
  metadataTimeoutMs: number;
  narTimeoutMs: number;
  realm: string;
  /** The cache of the bare paths: tokens without a cache list may use only this one. */
  defaultCache: string;
  /** Circuit breaker: consecutive origin failures that open it, and how long it stays open. */
  breaker: { threshold: number; cooldownMs: number };
  /** Cloudflare Access service token for the origin hostname, if it is protected by Access. */
  access?: { clientId: string; clientSecret: string };
}

export class EdgeConfigError extends Error {
  override name = 'EdgeConfigError';
}

function ms(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 100 || n > 600_000) throw new EdgeConfigError(`${name} must be a whole number of milliseconds (100..600000)`);
  return n;
}

function count(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new EdgeConfigError(`${name} must be a whole number from 1 to 1000`);
  return n;
}

/** Validates the Worker's environment once per isolate. */
export function parseEdgeConfig(env: Env): EdgeConfig {
  let origin: URL;
  try {
    origin = new URL(env.ORIGIN_URL ?? '');
  } catch {
    throw new EdgeConfigError('ORIGIN_URL is not set to an http(s) URL');
  }
  if (origin.protocol !== 'http:' && origin.protocol !== 'https:') throw new EdgeConfigError('ORIGIN_URL must be http(s)');
  if (!env.EDGE_SECRET || env.EDGE_SECRET.length < 16) throw new EdgeConfigError('EDGE_SECRET is missing or shorter than 16 characters (wrangler secret put EDGE_SECRET)');
  const anon = (env.ALLOW_ANONYMOUS ?? 'false').toLowerCase();
  if (anon !== 'true' && anon !== 'false') throw new EdgeConfigError('ALLOW_ANONYMOUS must be "true" or "false"');
  if (!!env.ACCESS_CLIENT_ID !== !!env.ACCESS_CLIENT_SECRET) {
    throw new EdgeConfigError('ACCESS_CLIENT_ID and ACCESS_CLIENT_SECRET go together (wrangler secret put both, or neither)');
  }
  const defaultCache = env.DEFAULT_CACHE || 'default';
  const problem = cacheNameProblem(defaultCache);
  if (problem) throw new EdgeConfigError(`DEFAULT_CACHE: ${problem}`);
  return {
    defaultCache,
    access: env.ACCESS_CLIENT_ID ? { clientId: env.ACCESS_CLIENT_ID, clientSecret: env.ACCESS_CLIENT_SECRET! } : undefined,
    originUrl: origin.origin + origin.pathname.replace(/\/+$/, ''),
    edgeSecret: env.EDGE_SECRET,
    allowAnonymous: anon === 'true',
    metadataTimeoutMs: ms('ORIGIN_TIMEOUT_MS', env.ORIGIN_TIMEOUT_MS, 10_000),
    narTimeoutMs: ms('NAR_TIMEOUT_MS', env.NAR_TIMEOUT_MS, 30_000),
    realm: env.REALM || 'eris',
    breaker: {
      threshold: count('BREAKER_THRESHOLD', env.BREAKER_THRESHOLD, 5),
      cooldownMs: ms('BREAKER_COOLDOWN_MS', env.BREAKER_COOLDOWN_MS, 5_000),
    },
  };
}
