import { HTTPException } from 'hono/http-exception';
import type { ErrorHandler } from 'hono';
import { StoreBusyError } from './store/db.ts';
import type { OriginEnv } from './types.ts';

/** A clear one-line client error. */
export const badRequest = (message: string) => new HTTPException(400, { message });
export const notFound = (message = 'not found') => new HTTPException(404, { message });

/**
 * One place maps failures to statuses. Expected ones carry their status; a busy
 * DB is a retryable 503; anything else is a 500 — never a 404, which Nix
 * would remember as a miss.
 */
export const onError: ErrorHandler<OriginEnv> = (err, c) => {
  const noStore = { 'Cache-Control': 'private, no-store', 'Content-Type': 'text/plain; charset=utf-8' };
  if (err instanceof HTTPException) {
    return c.body(`${err.message}\n`, err.status, noStore);
  }
  const log = c.get('deps')?.log;
  if (err instanceof StoreBusyError) {
    log?.warn({ msg: 'store database busy', path: c.req.path, error: err.message });
    return c.body('store database busy, retry\n', 503, { ...noStore, 'Retry-After': '1' });
  }
  log?.error({ msg: 'internal error', path: c.req.path, error: err instanceof Error ? err.stack ?? err.message : String(err) });
  return c.body('internal error\n', 500, noStore);
};
