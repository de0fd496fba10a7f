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

/** A TokenStore over a KV namespace (the TOKENS binding). */
export function kvTokenStore(kv: TokenKv): TokenStore {
  return {
    async get(digestHex) {
      return parseTokenRecord(await kv.get(tokenKey(digestHex)));
    },
  };
}
