/**
 * Authenticates users: HTTP Basic as Nix sends it from a netrc file (login =
 * user, password = token) or `Authorization: Bearer <token>`. A failure is a
 * 401 with `WWW-Authenticate` and no hint which part was wrong.
 */
import type { MiddlewareHandler } from 'hono';
import { grantsScope, tokenDigest, tokenExpired, tokenId, type TokenRecord, CONTENT_TYPE } from '../../../shared/contract.ts';
import type { TokenStore } from '../../tokens.ts';
import type { EdgeEnv } from '../../types.ts';
import { requestedCache } from '../../cache-routing.ts';
import { unauthorizedBody } from '../../../shared/client-config.ts';
import { scopeFor as pushScopeFor } from '../../../shared/push-protocol.ts';
import { cacheOfPath } from '../../../shared/caches.ts';
import { MAX_OIDC_TOKEN_LENGTH, OIDC_TOKEN_PREFIX } from '../../../shared/oidc-exchange.ts';

export interface AuthOptions {
  tokens: TokenStore;
  realm: string;
  allowAnonymous: boolean;
  /** Paths anyone may read (the public key, the landing page). */
  publicPaths: ReadonlySet<string>;
  /** The cache of the bare paths (DEFAULT_CACHE). */
  defaultCache: string;
  /** Scope a request needs (by default shared/push-protocol.ts's rule: reads read, writes and uploads write). */
  scopeFor?: (method: string, path: string) => string;
  now?: () => number;
}

interface Credentials {
  user?: string;
  token: string;
}

export function parseAuthorization(header: string | undefined): Credentials | null {
  if (!header) return null;
  const sp = header.indexOf(' ');
  if (sp < 0) return null;
  const scheme = header.slice(0, sp).toLowerCase();
  const value = header.slice(sp + 1).trim();
  if (scheme === 'bearer') return value ? { token: value } : null;
  if (scheme !== 'basic') return null;
  let decoded: string;
  try {
    decoded = atob(value);
  } catch {
    return null;
  }
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  const token = decoded.slice(colon + 1);
  return token ? { user: decoded.slice(0, colon), token } : null;
}

async function lookup(tokens: TokenStore, token: string): Promise<{ record: TokenRecord | null; digest: string }> {
  const digest = await tokenDigest(token);
  return { record: await tokens.get(digest), digest };
}

export function auth(options: AuthOptions): MiddlewareHandler<EdgeEnv> {
  const scopeFor = options.scopeFor ?? ((m: string, path: string) => pushScopeFor(m, cacheOfPath(path).rest));
  const now = options.now ?? Date.now;
  // The body says in one line what Nix needs: a netrc entry for this host.
  const deny = (realm: string, url: string) =>
    new Response(unauthorizedBody(new URL(url).hostname), {
      status: 401,
      headers: { 'WWW-Authenticate': `Basic realm="${realm}", charset="UTF-8"`, 'Content-Type': CONTENT_TYPE.text },
    });

  return async function authMiddleware(c, next) {
    if (options.publicPaths.has(c.req.path)) return next();
    const creds = parseAuthorization(c.req.header('Authorization'));
    if (!creds) {
      // Anonymous reads, when allowed, reach the default cache only.
      const cache = requestedCache(c.req.path, options.defaultCache);
      if (options.allowAnonymous && scopeFor(c.req.method, c.req.path) === 'read' && (cache === undefined || cache === options.defaultCache)) {
        c.set('user', 'anonymous');
        c.set('anonymous', true);
        c.set('caches', [options.defaultCache]);
        return next();
      }
      c.set('authFailure', 'missing credentials');
      return deny(options.realm, c.req.url);
    }
    if (creds.token.length > (creds.token.startsWith(OIDC_TOKEN_PREFIX) ? MAX_OIDC_TOKEN_LENGTH : 512)) {
      c.set('authFailure', 'oversized token');
      return deny(options.realm, c.req.url);
    }
    const { tokens } = options;
    const { record, digest } = tokens.byToken ? await tokens.byToken(creds.token) : await lookup(tokens, creds.token);
    const scope = scopeFor(c.req.method, c.req.path);
    const ok = record !== null &&
      (creds.user === undefined || creds.user === (record.login ?? record.user)) &&
      !tokenExpired(record, now()) &&
      grantsScope(record, scope);
    if (!ok) {
      c.set('authFailure', record ? 'token not valid for this user, scope or time' : 'unknown token');
      return deny(options.realm, c.req.url);
    }
    // A cache the token was not granted is the same 401 as a bad token, before anything is asked of the origin:
    // a private cache reveals nothing, not even its nix-cache-info.
    const granted = record.caches ?? [options.defaultCache];
    const cache = requestedCache(c.req.path, options.defaultCache);
    if (cache !== undefined && !granted.includes(cache)) {
      c.set('authFailure', `token not granted cache ${cache}`);
      return deny(options.realm, c.req.url);
    }
    c.set('user', record.user);
    c.set('tokenId', tokenId(digest));
    c.set('caches', granted);
    return next();
  };
}
