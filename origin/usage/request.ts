/** Who made a request and which cache it addressed, as usage accounting records them. */
import type { Context } from 'hono';
import { USER_HEADER } from '../../shared/contract.ts';
import type { OriginEnv } from '../server/types.ts';

/** The user the edge authenticated; '' for an anonymous request. */
export const requestUser = (c: Context<OriginEnv>): string => c.req.header(USER_HEADER) ?? '';

/** The cache the request addressed (set by the cache selector; bare paths: the default cache). */
export const requestCache = (c: Context<OriginEnv>): string => c.get('cache') ?? 'default';
