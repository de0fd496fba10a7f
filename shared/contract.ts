/**
 * The contract between the edge (the Worker) and the origin (`eris serve`,
 * and the `eris token` CLI that writes what the edge reads). Pure and without
 * I/O: it runs unchanged in Node 22 and in workerd, and both halves import it,
 * so each name and each rule exists once.
 *
 * - Every request the edge forwards carries the edge secret in
 *   EDGE_SECRET_HEADER and, when a user authenticated, the user's name in
 *   USER_HEADER (absent for anonymous requests), and the token's id
 *   (TOKEN_ID_HEADER: the first TOKEN_ID_LENGTH hex digits of its digest,
 *   what `eris token list` shows; never the token) so the origin's log and
 *   usage say which token did what.
 * - Every response, on both sides and errors included, says
 *   `Cache-Control: NO_STORE`.
 * - Tokens live in the Worker's TOKENS KV namespace at
 *   `token:<sha256 hex of the token>` (tokenKey(await tokenDigest(token))),
 *   the value being a TokenRecord as JSON (the CLI stores it again as the
 *   key's metadata, for `eris token list`).
 */

export const EDGE_SECRET_HEADER = 'x-eris-edge-secret';
export const USER_HEADER = 'x-eris-user';
export const TOKEN_ID_HEADER = 'x-eris-token-id';
export const NO_STORE = 'private, no-store';

/** The shortest edge secret either side accepts (the origin's edge_secret, the Worker's EDGE_SECRET). */
export const EDGE_SECRET_MIN_LENGTH = 16;

/** The Content-Type of each kind of answer, at both ends. */
export const CONTENT_TYPE = {
  text: 'text/plain; charset=utf-8',
  json: 'application/json',
  narinfo: 'text/x-nix-narinfo',
  nar: 'application/x-nix-nar',
  cacheInfo: 'text/x-nix-cache-info',
} as const;

export const TOKEN_KEY_PREFIX = 'token:';

/** `admin` opens the operator's page (/v1/admin) and nothing else: it implies neither read nor write. */
export type TokenScope = 'read' | 'write' | 'admin';
export const TOKEN_SCOPES: readonly TokenScope[] = ['read', 'write', 'admin'];
/** The scopes that reach caches (what exchanged OIDC tokens may get: never admin). */
export const CACHE_SCOPES: readonly TokenScope[] = ['read', 'write'];

/** What KV holds for one token. */
export interface TokenRecord {
  user: string;
  /** `write` implies `read`. */
  scopes: TokenScope[];
  /** Caches the token may use; absent means the default cache only. `write` applies to every cache listed. */
  caches?: string[];
  /** ISO date the token was made ('' when an old record lacks it). */
  created: string;
  /** ISO date from which the token is refused; null: never. */
  expires: string | null;
  /**
   * The Basic login the token must come with, when it is not `user` (exchanged OIDC tokens, whose user
   * has a `:` in it: `oidc`). Never read from KV: only the edge sets it, for the tokens it checks itself.
   */
  login?: string;
}

/** SHA-256 of the token as lower-case hex, with WebCrypto (Node 22 and workerd alike). */
export async function tokenDigest(token: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)));
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}

/** How many hex digits of the digest name a token (in `eris token list`, the logs and usage). */
export const TOKEN_ID_LENGTH = 12;

/** A token's id from its digest: not secret (a prefix of a SHA-256), enough to tell tokens apart. */
export const tokenId = (digestHex: string): string => digestHex.slice(0, TOKEN_ID_LENGTH);

/** The KV key for a token digest. */
export const tokenKey = (digestHex: string): string => TOKEN_KEY_PREFIX + digestHex;

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * A record from JSON text (a KV value) or an object (KV metadata); null when
 * it is not one. Unknown scopes are dropped. A record whose `expires` or
 * `caches` is present but malformed is refused as a whole (null), so a
 * damaged record never grants more than it says.
 */
export function parseTokenRecord(value: unknown): TokenRecord | null {
  let r = value;
  if (typeof r === 'string') {
    try {
      r = JSON.parse(r);
    } catch {
      return null;
    }
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return null;
  const o = r as Record<string, unknown>;
  if (typeof o.user !== 'string' || !Array.isArray(o.scopes)) return null;
  if (o.expires !== undefined && o.expires !== null && typeof o.expires !== 'string') return null;
  if (o.caches !== undefined && !isStringArray(o.caches)) return null;
  const record: TokenRecord = {
    user: o.user,
    scopes: o.scopes.filter((s): s is TokenScope => TOKEN_SCOPES.includes(s as TokenScope)),
    created: typeof o.created === 'string' ? o.created : '',
    expires: typeof o.expires === 'string' ? o.expires : null,
  };
  if (o.caches !== undefined) record.caches = o.caches as string[];
  return record;
}

/** Whether the token is past its expiry at `now` (ms). No date (null, '') is never; an unreadable one is already past. */
export function tokenExpired(record: TokenRecord, now: number): boolean {
  return !!record.expires && !(Date.parse(record.expires) > now);
}

/** Whether the record's scopes allow `scope` (`write` implies `read`). */
export function grantsScope(record: TokenRecord, scope: string): boolean {
  return record.scopes.includes(scope as TokenScope) || (scope === 'read' && record.scopes.includes('write'));
}
