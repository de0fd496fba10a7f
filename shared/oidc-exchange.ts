/**
 * The wire of the OIDC exchange (the client and the edge import this one module):
 *
 *   POST /v1/oidc/token   Authorization: Bearer <the CI's identity token (JWT)>
 *     200 {"token", "login", "user", "caches", "scopes", "expires"}     (ExchangeResponse)
 *     200 `machine <host> login oidc password <token>\n`              with ?format=netrc
 *     401 one line naming the check that failed (signature, issuer, audience, expiry, …)
 *     403 `no trust rule matches this token` (never which claims would)
 *     503 the issuer's keys cannot be fetched (retry later)
 *     404 the edge has no OIDC_TRUST
 *
 * The token is sent like any other eris token: as the password of a netrc entry whose login is
 * OIDC_LOGIN (Basic), or as `Authorization: Bearer <token>`.
 */
import type { TokenScope } from './contract.ts';

export const OIDC_TOKEN_PATH = '/v1/oidc/token';
/** The login that goes with an exchanged token in a netrc (its user is a subject with `:` in it, which Basic cannot carry). */
export const OIDC_LOGIN = 'oidc';
/** Every exchanged token starts with this. */
export const OIDC_TOKEN_PREFIX = 'eris_oidc.';
/** Longest exchanged token (the auth middleware allows this much for tokens with the prefix). */
export const MAX_OIDC_TOKEN_LENGTH = 1024;

export interface ExchangeResponse {
  token: string;
  login: typeof OIDC_LOGIN;
  /** Who the token acts as in logs and usage, e.g. `github:acme/app@refs/heads/main`. */
  user: string;
  caches: string[];
  scopes: TokenScope[];
  /** ISO date from which the token is refused. */
  expires: string;
}

/** The netrc line for an exchanged token on `host`. */
export const oidcNetrcLine = (host: string, token: string): string => `machine ${host} login ${OIDC_LOGIN} password ${token}\n`;
