/**
 * JSON Web Tokens as CI systems sign them, checked with WebCrypto alone:
 * RS256 (RSASSA-PKCS1-v1_5 with SHA-256, keys of at least 2048 bits) and
 * ES256 (ECDSA P-256 with SHA-256). Nothing else is accepted — never
 * `alg: none`, never an HMAC (a public key used as an HMAC secret would
 * verify anything signed with it) — and the algorithm is fixed by the header
 * *and* must suit the key: an RSA key never verifies ES256 and the reverse,
 * a JWK that names its own `alg` is used for that algorithm only.
 *
 * Every failure is a JwtError whose message names the check, in a few words,
 * for a one-line 401.
 */

export const JWT_ALGS = ['RS256', 'ES256'] as const;
export type JwtAlg = (typeof JWT_ALGS)[number];

/** Seconds of clock difference tolerated on exp, nbf and iat. */
export const JWT_LEEWAY_SECONDS = 60;
/** Longest compact JWT accepted (GitHub's are about 1.2 kB). */
export const MAX_JWT_LENGTH = 16_384;

export class JwtError extends Error {
  override name = 'JwtError';
}

export interface DecodedJwt {
  header: { alg: JwtAlg; kid?: string; [k: string]: unknown };
  claims: Record<string, unknown>;
  /** `<header>.<payload>` as sent: what the signature covers. */
  signingInput: Uint8Array;
  signature: Uint8Array;
}

export function base64UrlDecode(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new JwtError('malformed token');
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function base64UrlEncode(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function jsonPart(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(base64UrlDecode(part)));
  } catch {
    throw new JwtError(`malformed token ${what}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JwtError(`malformed token ${what}`);
  return v as Record<string, unknown>;
}

/** Splits and parses a compact JWS; checks its form and algorithm, not its signature. */
export function decodeJwt(jwt: string): DecodedJwt {
  if (jwt.length > MAX_JWT_LENGTH) throw new JwtError('oversized token');
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new JwtError('malformed token (not a signed JWT)');
  const [h, p, s] = parts as [string, string, string];
  const header = jsonPart(h, 'header');
  if (!JWT_ALGS.includes(header.alg as JwtAlg)) throw new JwtError(`unsupported alg ${JSON.stringify(String(header.alg)).slice(0, 20)} (only ${JWT_ALGS.join(', ')})`);
  if (header.crit !== undefined) throw new JwtError('unsupported critical header');
  if (header.kid !== undefined && typeof header.kid !== 'string') throw new JwtError('malformed token header');
  const claims = jsonPart(p, 'payload');
  const signature = base64UrlDecode(s);
  if (!signature.length) throw new JwtError('missing signature');
  return { header: header as DecodedJwt['header'], claims, signingInput: new TextEncoder().encode(`${h}.${p}`), signature };
}

/** A public JWK as a JWKS lists it. */
export interface Jwk {
  kty?: unknown;
  kid?: unknown;
  alg?: unknown;
  use?: unknown;
  n?: unknown;
  e?: unknown;
  crv?: unknown;
  x?: unknown;
  y?: unknown;
}

const RS256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
const ES256_IMPORT = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ES256_VERIFY = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** 2048-bit modulus, base64url: 342 characters (256 bytes). */
const MIN_RSA_N_CHARS = 342;

/**
 * The WebCrypto verification key for `alg` from a JWK, or a JwtError when the key does not suit the
 * algorithm. Only the public members are imported.
 */
export async function importJwk(jwk: Jwk, alg: JwtAlg): Promise<CryptoKey> {
  if (jwk.alg !== undefined && jwk.alg !== alg) throw new JwtError('key is not for this alg');
  if (jwk.use !== undefined && jwk.use !== 'sig') throw new JwtError('key is not for signatures');
  try {
    if (alg === 'RS256') {
      if (jwk.kty !== 'RSA' || typeof jwk.n !== 'string' || typeof jwk.e !== 'string') throw new JwtError('key is not for this alg');
      if (jwk.n.length < MIN_RSA_N_CHARS) throw new JwtError('RSA key shorter than 2048 bits');
      return await crypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, ext: true }, RS256, false, ['verify']);
    }
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') throw new JwtError('key is not for this alg');
    return await crypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, ext: true }, ES256_IMPORT, false, ['verify']);
  } catch (err) {
    if (err instanceof JwtError) throw err;
    throw new JwtError('unusable key');
  }
}

/** Whether the JWT's signature is good under `key` (imported by importJwk for the header's alg). */
export async function verifySignature(jwt: DecodedJwt, key: CryptoKey): Promise<boolean> {
  const alg = jwt.header.alg === 'RS256' ? RS256 : ES256_VERIFY;
  // ES256 signatures are r‖s, 64 bytes, which is what WebCrypto's ECDSA takes.
  if (jwt.header.alg === 'ES256' && jwt.signature.length !== 64) return false;
  try {
    return await crypto.subtle.verify(alg, key, jwt.signature as Uint8Array<ArrayBuffer>, jwt.signingInput as Uint8Array<ArrayBuffer>);
  } catch {
    return false;
  }
}

const numericDate = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * The registered claims of a verified token: `iss` equal to `issuer`, `aud` (a string or a list)
 * holding `audience`, `exp` present and not past, `nbf` and `iat` not in the future — each time
 * with JWT_LEEWAY_SECONDS of slack. `nowMs` in ms.
 */
export function checkClaims(claims: Record<string, unknown>, o: { issuer: string; audience: string; nowMs: number }): void {
  if (claims.iss !== o.issuer) throw new JwtError('wrong issuer');
  const aud = claims.aud;
  if (!(aud === o.audience || (Array.isArray(aud) && aud.includes(o.audience)))) throw new JwtError('wrong audience');
  const now = o.nowMs / 1000;
  if (!numericDate(claims.exp)) throw new JwtError('token has no expiry (exp)');
  if (claims.exp + JWT_LEEWAY_SECONDS <= now) throw new JwtError('token expired');
  if (claims.nbf !== undefined && (!numericDate(claims.nbf) || claims.nbf - JWT_LEEWAY_SECONDS > now)) throw new JwtError('token not yet valid (nbf)');
  if (claims.iat !== undefined && (!numericDate(claims.iat) || claims.iat - JWT_LEEWAY_SECONDS > now)) throw new JwtError('token issued in the future (iat)');
}
