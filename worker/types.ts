import type { Env } from './env.ts';

/** Hono's environment for the edge app: the Worker's bindings, and what middleware hands on. */
export type EdgeEnv = {
  Bindings: Env;
  Variables: {
    /** The authenticated user ('anonymous' for anonymous reads). */
    user?: string;
    /** Why authentication failed, for the request log. */
    authFailure?: string;
  };
};
