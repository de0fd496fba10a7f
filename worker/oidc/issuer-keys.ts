/**
 * An issuer's signing keys: its discovery document
 * (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the
 * configured one) names `jwks_uri`; the JWKS there lists the keys by `kid`.
 *
 * Bounded on every side, since any client can make the edge ask:
 * - a key set is used for maxAgeMs (1 h), then fetched again; if that fails, the old one serves for
 *   at most maxStaleMs (a day) more, so a short outage at the issuer does not stop CI;
 * - an unknown `kid` (the issuer rotated its keys, or a forgery) fetches again at most once per
 *   minRefreshMs (60 s) per issuer; after a failed fetch the next try waits retryAfterFailureMs;
 * - each fetch has a timeout, documents are at most MAX_DOCUMENT_BYTES, a key set at most MAX_KEYS keys;
 * - only https (or http to a loopback test issuer), and the jwks_uri under the same rule.
 * Only settled answers are kept, never a pending promise (workerd does not let one request await
 * another's I/O), so concurrent first requests may each fetch once.
 */
import type { Log } from '../log.ts';
import { issuerUrlProblem } from '../../shared/oidc-trust.ts';
import { importJwk, JwtError, type Jwk, type JwtAlg } from './jwt.ts';

export const MAX_DOCUMENT_BYTES = 256 * 1024;
export const MAX_KEYS = 64;

/** The issuer's keys could not be fetched (and none are cached): the token may be fine, the client should retry. */
export class IssuerUnavailable extends Error {
  override name = 'IssuerUnavailable';
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface IssuerKeysOptions {
  /** The issuer URL (`iss`). */
  issuer: string;
  fetchImpl?: FetchLike;
  now?: () => number;
  log?: Log;
  maxAgeMs?: number;
  maxStaleMs?: number;
  minRefreshMs?: number;
  retryAfterFailureMs?: number;
  timeoutMs?: number;
}

export interface IssuerKeys {
  /** The verification key for `kid` and `alg`; JwtError when there is no such key (after at most one bounded refresh), IssuerUnavailable when none can be fetched. */
  key(kid: string, alg: JwtAlg): Promise<CryptoKey>;
}

async function readJson(res: Response, what: string): Promise<Record<string, unknown>> {
  if (res.status !== 200) throw new Error(`${what}: HTTP ${res.status}`);
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_DOCUMENT_BYTES) throw new Error(`${what}: larger than ${MAX_DOCUMENT_BYTES} bytes`);
  const reader = res.body?.getReader();
  if (!reader) throw new Error(`${what}: empty`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_DOCUMENT_BYTES) {
      await reader.cancel();
      throw new Error(`${what}: larger than ${MAX_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) bytes.set(c, (at += c.length) - c.length);
  const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: not a JSON object`);
  return v as Record<string, unknown>;
}

export function issuerKeys(o: IssuerKeysOptions): IssuerKeys {
  const now = o.now ?? Date.now;
  const fetchImpl: FetchLike = o.fetchImpl ?? ((input, init) => fetch(input, init));
  const maxAgeMs = o.maxAgeMs ?? 3_600_000;
  const maxStaleMs = o.maxStaleMs ?? 86_400_000;
  const minRefreshMs = o.minRefreshMs ?? 60_000;
  const retryAfterFailureMs = o.retryAfterFailureMs ?? 10_000;
  const timeoutMs = o.timeoutMs ?? 5_000;
  let cached: { keys: Map<string, Jwk>; fetchedAt: number } | undefined;
  let lastAttempt = -Infinity;
  let lastFailure = -Infinity;
  const imported = new Map<string, CryptoKey>();

  const get = (url: string, what: string) =>
    fetchImpl(url, { headers: { accept: 'application/json' }, redirect: 'manual', cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) }).then((r) => readJson(r, what));

  async function fetchKeys(): Promise<Map<string, Jwk>> {
    const discovery = await get(`${o.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, 'discovery document');
    if (discovery.issuer !== o.issuer) throw new Error('discovery document names another issuer');
    const jwksUri = discovery.jwks_uri;
    if (typeof jwksUri !== 'string' || issuerUrlProblem(jwksUri)) throw new Error('discovery document: jwks_uri is not an https URL');
    const jwks = await get(jwksUri, 'JWKS');
    if (!Array.isArray(jwks.keys)) throw new Error('JWKS: no "keys" list');
    const keys = new Map<string, Jwk>();
    for (const k of jwks.keys.slice(0, MAX_KEYS) as unknown[]) {
      if (typeof k === 'object' && k !== null && typeof (k as Jwk).kid === 'string') keys.set((k as Jwk).kid as string, k as Jwk);
    }
    return keys;
  }

  /** Fetches the key set again unless a fetch was tried too recently; false when it did not (or could not). */
  async function refresh(minSinceLast: number): Promise<boolean> {
    const t = now();
    if (t - lastAttempt < minSinceLast || t - lastFailure < retryAfterFailureMs) return false;
    lastAttempt = t;
    try {
      const keys = await fetchKeys();
      cached = { keys, fetchedAt: now() };
      imported.clear();
      return true;
    } catch (err) {
      lastFailure = now();
      o.log?.({ msg: 'oidc: fetching the issuer\'s keys failed', issuer: o.issuer, error: err instanceof Error ? err.message : String(err) });
      return false;
    }
  }

  return {
    async key(kid, alg) {
      if (!cached || now() - cached.fetchedAt >= maxAgeMs) {
        await refresh(0);
        if (!cached || now() - cached.fetchedAt >= maxAgeMs + maxStaleMs) throw new IssuerUnavailable('the issuer\'s keys cannot be fetched; retry later');
      }
      let jwk = cached.keys.get(kid);
      // A kid we do not know: the issuer may have rotated its keys. Ask again, at most once per minRefreshMs.
      if (!jwk && (await refresh(minRefreshMs))) jwk = cached.keys.get(kid);
      if (!jwk) throw new JwtError('unknown key id (kid)');
      const id = `${kid}\n${alg}`;
      let key = imported.get(id);
      if (!key) {
        key = await importJwk(jwk, alg);
        imported.set(id, key);
      }
      return key;
    },
  };
}
