/**
 * Tokens are random strings handed to users once; the edge keeps only their
 * SHA-256. Looking a token up by its digest reveals nothing through timing.
 * The record, its key and its parser are the edge↔origin contract
 * (shared/contract.ts), shared with the `eris token` CLI that writes them.
 */
import { parseTokenRecord, tokenKey, type TokenRecord } from '../shared/contract.ts';

export interface TokenStore {
  /** The record for a token digest (hex), or null. */
  get(digestHex: string): Promise<TokenRecord | null>;
}

/** The part of a KV namespace the edge reads tokens with. */
export interface TokenKv {
  get(key: string): Promise<string | null>;
}

export interface TokenCacheOptions {
  /** How long an answer (a record, or no record) is kept, ms. 0: no cache. */
  ttlMs: number;
  /** Most digests kept; beyond that the oldest entry goes. */
  maxEntries?: number;
  now?: () => number;
}

/**
 * Answers kept in the isolate for a short while: a client copying a closure sends hundreds of requests
 * with the same token, and each would otherwise be a KV read (billed, and a round trip). KV is itself
 * eventually consistent — a deleted key can still be read for about 60 s at a location that cached it —
 * so a few seconds here add only those seconds to the bound after which a revoked token is refused:
 * KV's ~60 s + ttl. Misses are kept too (a flood of bad tokens reads KV once per ttl per token); a new
 * token may then be refused for up to ttl after a first failed try, as KV's own negative caching does.
 * Lookups that fail (KV unreachable) are not kept. Only settled answers are kept, never a pending
 * promise: workerd must not resolve one request's promise from another request's I/O.
 */
export function cachedTokenStore(inner: TokenStore, options: TokenCacheOptions): TokenStore {
  if (options.ttlMs <= 0) return inner;
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const entries = new Map<string, { until: number; record: TokenRecord | null }>();
  return {
    async get(digestHex) {
      const hit = entries.get(digestHex);
      if (hit && hit.until > now()) return hit.record;
      const record = await inner.get(digestHex);
      entries.delete(digestHex);
      entries.set(digestHex, { until: now() + options.ttlMs, record });
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
      return record;
    },
  };
}

/** A TokenStore over a KV namespace (the TOKENS binding). */
export function kvTokenStore(kv: TokenKv): TokenStore {
  return {
    async get(digestHex) {
      return parseTokenRecord(await kv.get(tokenKey(digestHex)));
    },
  };
}
