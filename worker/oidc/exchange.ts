/**
 * `POST /v1/oidc/token` (shared/oidc-exchange.ts): a CI job's identity token
 * in, a short-lived eris token out. Checks, in this order, each refusal a
 * status and one line naming the check that failed:
 *   1. a Bearer JWT, of form and algorithm RS256/ES256 (never none, never HMAC)      401
 *   2. `iss` is a configured issuer (nothing is fetched for an unknown one)          401
 *   3. the signature, against the issuer's JWKS by `kid`                              401 (503: keys unavailable)
 *   4. `iss`, `aud`, `exp`, `nbf`, `iat` with a minute of leeway                      401
 *   5. a trust rule matches the claims — the answer never says which would           403
 * Refusals set the request's auth failure, so the failed-login brake
 * (middleware/rate-limit) counts them per client address as it counts bad passwords.
 */
import type { Context, Handler } from 'hono';
import { matchRule, oidcUser, type OidcTrust } from '../../shared/oidc-trust.ts';
import { OIDC_LOGIN, oidcNetrcLine, type ExchangeResponse } from '../../shared/oidc-exchange.ts';
import type { EdgeEnv } from '../types.ts';
import { tokenDigest, tokenId } from '../../shared/contract.ts';
import type { Log } from '../log.ts';
import { checkClaims, decodeJwt, JwtError, verifySignature } from './jwt.ts';
import { IssuerUnavailable, type IssuerKeys } from './issuer-keys.ts';
import { mintToken } from './issued-token.ts';

export interface ExchangeOptions {
  trust: OidcTrust;
  /** The HMAC key exchanged tokens are signed with. */
  signingKey: Promise<CryptoKey>;
  /** The key source of each configured issuer, by issuer URL. */
  keys: ReadonlyMap<string, IssuerKeys>;
  now: () => number;
  log: Log;
}

const randomId = () => [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');

export function oidcExchange(o: ExchangeOptions): Handler<EdgeEnv> {
  const refuse = (c: Context<EdgeEnv>, status: 401 | 403 | 503, check: string) => {
    c.set('authFailure', `oidc: ${check}`);
    return c.text(`oidc token refused: ${check}\n`, status);
  };
  return async (c) => {
    const header = c.req.header('Authorization') ?? '';
    const m = /^Bearer +(\S+)\s*$/i.exec(header);
    if (!m) return refuse(c, 401, 'expected Authorization: Bearer <the CI job\'s identity token>');
    let jwt;
    try {
      jwt = decodeJwt(m[1]!);
    } catch (err) {
      if (err instanceof JwtError) return refuse(c, 401, err.message);
      throw err;
    }
    const issuer = o.trust.issuers.find((i) => i.url === jwt.claims.iss);
    if (!issuer) return refuse(c, 401, 'unknown issuer');
    if (typeof jwt.header.kid !== 'string') return refuse(c, 401, 'no key id (kid) in the token header');
    try {
      const key = await o.keys.get(issuer.url)!.key(jwt.header.kid, jwt.header.alg);
      if (!(await verifySignature(jwt, key))) return refuse(c, 401, 'bad signature');
      checkClaims(jwt.claims, { issuer: issuer.url, audience: issuer.audience, nowMs: o.now() });
    } catch (err) {
      if (err instanceof JwtError) return refuse(c, 401, err.message);
      if (err instanceof IssuerUnavailable) return refuse(c, 503, err.message);
      throw err;
    }
    const rule = matchRule(o.trust, issuer.name, jwt.claims);
    if (!rule) return refuse(c, 403, 'no trust rule matches this token');
    const user = oidcUser(issuer.name, jwt.claims);
    if (!user) return refuse(c, 403, 'the token names no usable subject (repository, project_path or sub)');
    const iat = Math.floor(o.now() / 1000);
    const exp = iat + rule.minutes * 60;
    const token = await mintToken(await o.signingKey, { v: 1, id: randomId(), rule: rule.name, user, caches: rule.caches, scopes: rule.scopes, iat, exp });
    c.set('user', user);
    // `token` is the id the request log shows for it (its digest's first digits), never the token.
    o.log({ msg: 'oidc token issued', user, token: tokenId(await tokenDigest(token)), rule: rule.name, caches: rule.caches, scopes: rule.scopes, expires: new Date(exp * 1000).toISOString() });
    if (c.req.query('format') === 'netrc') return c.text(oidcNetrcLine(new URL(c.req.url).hostname, token));
    const body: ExchangeResponse = { token, login: OIDC_LOGIN, user, caches: rule.caches, scopes: rule.scopes, expires: new Date(exp * 1000).toISOString() };
    return c.json(body);
  };
}
