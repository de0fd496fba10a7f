/**
 * Tokens are random strings handed to users once; the edge keeps only their
 * SHA-256. Looking a token up by its digest reveals nothing through timing.
 * The record, its key and its parser are the edge↔origin contract
 * (shared/contract.ts), shared with the `eris token` CLI that writes them.
 */
import { parseTokenRecord, tokenDigest, tokenKey, type TokenRecord } from '../shared/contract.ts';

export interface TokenStore {
  /** The record for a token digest (hex), or null. */
  get(digestHex: string): Promise<TokenRecord | null>;
  /** The record for a token itself and the token's digest, when the store can skip hashing it (the isolate cache, on a hit). */
  byToken?(token: string): Promise<{ record: TokenRecord | null; digest: string }>;
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
 * promise: workerd must not resolve one request's promise from another request's I/O. byToken keys
 * the same answers by the token itself, so a hit costs no SHA-256 either (the token stays in this
 * isolate's memory, where the request held it anyway, for at most ttl).
 */
export function cachedTokenStore(inner: TokenStore, options: TokenCacheOptions): TokenStore {
  if (options.ttlMs <= 0) return inner;
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  type Entries<T> = Map<string, { until: number; value: T }>;
  const byDigest: Entries<TokenRecord | null> = new Map();
  const byToken: Entries<{ record: TokenRecord | null; digest: string }> = new Map();
  async function cached<T>(entries: Entries<T>, key: string, read: () => Promise<T>): Promise<T> {
    const hit = entries.get(key);
    if (hit && hit.until > now()) return hit.value;
    const value = await read();
    entries.delete(key);
    entries.set(key, { until: now() + options.ttlMs, value });
    if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
    return value;
  }
  return {
    get: (digestHex) => cached(byDigest, digestHex, () => inner.get(digestHex)),
    byToken: (token) =>
      cached(byToken, token, async () => {
        const digest = await tokenDigest(token);
        return { record: await inner.get(digest), digest };
      }),
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
