/**
 * The OIDC exchange wired from the edge's config: one key source per
 * configured issuer, the HMAC key of exchanged tokens, the exchange route,
 * and the token store that accepts exchanged tokens beside the stored ones.
 */
import type { Handler } from 'hono';
import type { EdgeConfig } from '../config.ts';
import type { EdgeEnv } from '../types.ts';
import type { TokenStore } from '../tokens.ts';
import type { Log } from '../log.ts';
import { tokenDigest } from '../../shared/contract.ts';
import { OIDC_TOKEN_PREFIX } from '../../shared/oidc-exchange.ts';
import { issuerKeys, type FetchLike } from './issuer-keys.ts';
import { oidcExchange } from './exchange.ts';
import { readToken, recordFor, tokenSigningKey } from './issued-token.ts';

export interface Oidc {
  exchange: Handler<EdgeEnv>;
  /** `inner` (the stored tokens) plus the exchanged ones, checked by their MAC and the trust rules as they are now. */
  tokens(inner: TokenStore): TokenStore;
}

export function createOidc(config: NonNullable<EdgeConfig['oidc']>, deps: { fetchImpl?: FetchLike; now: () => number; log: Log }): Oidc {
  const signingKey = tokenSigningKey(config.secret);
  const keys = new Map(config.trust.issuers.map((i) => [i.url, issuerKeys({ issuer: i.url, fetchImpl: deps.fetchImpl, now: deps.now, log: deps.log })]));
  return {
    exchange: oidcExchange({ trust: config.trust, signingKey, keys, now: deps.now, log: deps.log }),
    tokens(inner) {
      const stored = async (token: string) => {
        if (inner.byToken) return inner.byToken(token);
        const digest = await tokenDigest(token);
        return { record: await inner.get(digest), digest };
      };
      return {
        get: (digest) => inner.get(digest),
        async byToken(token) {
          if (!token.startsWith(OIDC_TOKEN_PREFIX)) return stored(token);
          const t = await readToken(await signingKey, token);
          // Its id (logs, usage) is its digest's, like a stored token's: it is in no KV list, its subject is its user.
          return { record: t && recordFor(t, config.trust), digest: await tokenDigest(token) };
        },
      };
    },
  };
}
