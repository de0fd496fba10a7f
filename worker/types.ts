import type { Env } from './env.ts';
import type { Provenance } from './origins.ts';

/** Hono's environment for the edge app: the Worker's bindings, and what middleware hands on. */
export type EdgeEnv = {
  Bindings: Env;
  Variables: {
    /** The authenticated user ('anonymous' for anonymous reads, as the request log shows them). */
    user?: string;
    /** The authenticated token's id (shared/contract.ts tokenId: never the token), for the log and the origin. */
    tokenId?: string;
    /** An anonymous read (ALLOW_ANONYMOUS): the origin gets no USER_HEADER. */
    anonymous?: boolean;
    /** The caches the request's token may use (the default cache only for tokens without a list, and anonymous reads). */
    caches?: string[];
    /** Why authentication failed, for the request log. */
    authFailure?: string;
    /** Which origins the proxy asked and which answered, for the request log. */
    provenance?: Provenance;
  };
};
