import { HTTPException } from 'hono/http-exception';
import type { ErrorHandler } from 'hono';
import { StoreBusyError } from '../store/db.ts';
import { BusyError } from './admission.ts';
import type { OriginEnv } from './types.ts';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { send, TEXT } from './respond.ts';

/** A clear one-line client error. */
export const badRequest = (message: string) => new HTTPException(400, { message });
export const notFound = (message = 'not found') => new HTTPException(404, { message });

/**
 * One place maps failures to statuses. Expected ones carry their status; a busy
 * DB is a retryable 503; anything else is a 500 — never a 404, which Nix
 * would remember as a miss.
 */
export const onError: ErrorHandler<OriginEnv> = (err, c) => {
  if (err instanceof HTTPException) {
    return send(c, err.status as ContentfulStatusCode, `${err.message}\n`, TEXT);
  }
  const log = c.get('deps')?.log;
  if (err instanceof BusyError) {
    return send(c, 503, `${err.message}\n`, TEXT, { 'Retry-After': String(err.retryAfterSeconds) });
  }
  if (err instanceof StoreBusyError) {
    log?.warn({ msg: 'store database busy', path: c.req.path, error: err.message });
    return send(c, 503, 'store database busy, retry\n', TEXT, { 'Retry-After': '1' });
  }
  log?.error({ msg: 'internal error', path: c.req.path, error: err instanceof Error ? err.stack ?? err.message : String(err) });
  return send(c, 500, 'internal error\n', TEXT);
};
