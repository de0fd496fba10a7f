/** Who made a request and which cache it addressed, as usage accounting records them. */
import type { Context } from 'hono';
import { TOKEN_ID_HEADER, USER_HEADER } from '../../shared/contract.ts';
import type { OriginEnv } from '../server/types.ts';
import { DEFAULT_CACHE_NAME } from '../../shared/caches.ts';

/** The user the edge authenticated; '' for an anonymous request. */
export const requestUser = (c: Context<OriginEnv>): string => c.req.header(USER_HEADER) ?? '';

/** The id of the token the edge authenticated (never the token); '' when it sent none. Only hex digits are taken. */
export const requestToken = (c: Context<OriginEnv>): string => tokenIdOf(c.req.header(TOKEN_ID_HEADER));

export const tokenIdOf = (raw: string | string[] | undefined): string => (typeof raw === 'string' && /^[0-9a-f]{1,64}$/.test(raw) ? raw : '');

/** The cache the request addressed (set by the cache selector; bare paths: the default cache). */
export const requestCache = (c: Context<OriginEnv>): string => c.get('cache') ?? DEFAULT_CACHE_NAME;
