/**
 * Tokens are random strings handed to users once; the edge keeps only their
 * SHA-256. Looking a token up by its digest reveals nothing through timing.
 */
export interface TokenRecord {
  user: string;
  scopes: string[];
  /** ISO date after which the token is refused. */
  expires?: string | null;
}

export interface TokenStore {
  /** The record for a token digest (hex), or null. */
  get(digestHex: string): Promise<TokenRecord | null>;
}

export const TOKEN_KEY_PREFIX = 'token:';

export async function sha256Hex(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}

export function parseTokenRecord(json: string | null): TokenRecord | null {
  if (!json) return null;
  try {
    const r = JSON.parse(json) as Partial<TokenRecord>;
    if (typeof r.user !== 'string' || !Array.isArray(r.scopes)) return null;
    return { user: r.user, scopes: r.scopes.filter((s) => typeof s === 'string'), expires: r.expires ?? null };
  } catch {
    return null;
  }
}

/** A TokenStore over a KV namespace. */
export function kvTokenStore(kv: KVNamespace): TokenStore {
  return {
    async get(digestHex) {
      return parseTokenRecord(await kv.get(TOKEN_KEY_PREFIX + digestHex));
    },
  };
}
