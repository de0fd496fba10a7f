/**
 * The tokens the OIDC exchange hands out: self-contained, signed by the edge.
 *
 *   eris_oidc.<base64url JSON IssuedToken>.<base64url HMAC-SHA256>
 *
 * Why not a record in the TOKENS KV namespace, like `eris token add`'s? KV
 * is eventually consistent: a key written at one Cloudflare location can take
 * about a minute to be readable at another, and a CI job uses its token the
 * second it gets it — possibly through another location (the runner's
 * requests need not all land on the one that answered the exchange). A
 * token the edge checks by itself works at once everywhere, costs no KV
 * write per CI job (KV's free tier allows 1000 a day) and no KV read per
 * request. The HMAC key is the Worker secret OIDC_TOKEN_SECRET; rotating it
 * ends every exchanged token at once.
 *
 * What a token may do is also bounded by the trust rules *as they are now*:
 * the token names its rule, and is refused as soon as that rule is removed
 * (cut-off at once, on the next deploy), and granted no more than the rule
 * grants today (caches, scopes, lifetime) — so narrowing a rule narrows the
 * tokens already out.
 */
import type { TokenRecord, TokenScope } from '../../shared/contract.ts';
import { MAX_OIDC_TOKEN_LENGTH, OIDC_LOGIN, OIDC_TOKEN_PREFIX } from '../../shared/oidc-exchange.ts';
import type { OidcTrust } from '../../shared/oidc-trust.ts';
import { base64UrlDecode, base64UrlEncode } from './jwt.ts';

/** What an exchanged token carries. Times in seconds since the epoch. */
export interface IssuedToken {
  v: 1;
  /** Random id (16 hex characters), for logs. */
  id: string;
  /** The trust rule that granted it. */
  rule: string;
  user: string;
  caches: string[];
  scopes: TokenScope[];
  iat: number;
  exp: number;
}

/** HMAC input: the encoded payload under a fixed label, so the key signs nothing else by accident. */
const signed = (payload: string) => new TextEncoder().encode(`eris-oidc-token-v1\n${payload}`);

/** The HMAC-SHA256 key from the OIDC_TOKEN_SECRET Worker secret. */
export function tokenSigningKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

export async function mintToken(key: CryptoKey, t: IssuedToken): Promise<string> {
  const payload = base64UrlEncode(new TextEncoder().encode(JSON.stringify(t)));
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, signed(payload)));
  const token = `${OIDC_TOKEN_PREFIX}${payload}.${base64UrlEncode(mac)}`;
  if (token.length > MAX_OIDC_TOKEN_LENGTH) throw new Error('exchanged token would be too long');
  return token;
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** The token's content when its MAC is good and its form right; null otherwise. Expiry is not checked here. */
export async function readToken(key: CryptoKey, token: string): Promise<IssuedToken | null> {
  if (!token.startsWith(OIDC_TOKEN_PREFIX) || token.length > MAX_OIDC_TOKEN_LENGTH) return null;
  const parts = token.slice(OIDC_TOKEN_PREFIX.length).split('.');
  if (parts.length !== 2) return null;
  const [payload, mac] = parts as [string, string];
  let t: Partial<IssuedToken>;
  try {
    // crypto.subtle.verify compares in constant time.
    if (!(await crypto.subtle.verify('HMAC', key, base64UrlDecode(mac) as Uint8Array<ArrayBuffer>, signed(payload)))) return null;
    t = JSON.parse(new TextDecoder().decode(base64UrlDecode(payload)));
  } catch {
    return null;
  }
  if (t?.v !== 1 || typeof t.id !== 'string' || typeof t.rule !== 'string' || typeof t.user !== 'string' || !isStrings(t.caches) || !isStrings(t.scopes)) return null;
  if (typeof t.iat !== 'number' || typeof t.exp !== 'number') return null;
  return t as IssuedToken;
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/**
 * The TokenRecord an exchanged token stands for under the trust rules as they are now: null when its
 * rule is gone; its grants cut down to what the rule grants today, its expiry to the rule's lifetime.
 */
export function recordFor(t: IssuedToken, trust: OidcTrust): TokenRecord | null {
  const rule = trust.rules.find((r) => r.name === t.rule);
  if (!rule) return null;
  return {
    user: t.user,
    login: OIDC_LOGIN,
    scopes: t.scopes.filter((s) => rule.scopes.includes(s)),
    caches: t.caches.filter((c) => rule.caches.includes(c)),
    created: iso(t.iat),
    expires: iso(Math.min(t.exp, t.iat + rule.minutes * 60)),
  };
}
