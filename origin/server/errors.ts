import { HTTPException } from 'hono/http-exception';
import type { ErrorHandler } from 'hono';
import { StoreBusyError } from '../store/db.ts';
import { StatusError } from './status-error.ts';
import type { OriginEnv } from './types.ts';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { send, TEXT } from './respond.ts';

/** A clear one-line client error. */
export const badRequest = (message: string) => new HTTPException(400, { message });
export const notFound = (message = 'not found') => new HTTPException(404, { message });

/** The answer to an expected failure: its status, one line and headers. */
export interface FailureAnswer {
  status: ContentfulStatusCode;
  line: string;
  headers: Record<string, string>;
}

/**
 * The one map from a failure to its status. Expected failures carry their
 * status (HTTPException, StatusError and its kinds: BusyError, PushError) and
 * maybe a Retry-After; a busy store DB is a retryable 503. Anything else is
 * undefined here and answered 500 — never a 404, which Nix would remember as a miss.
 */
export function failureAnswer(err: unknown): FailureAnswer | undefined {
  if (err instanceof HTTPException) return { status: err.status as ContentfulStatusCode, line: err.message, headers: {} };
  if (err instanceof StatusError) {
    return { status: err.status, line: err.message.split('\n')[0]!, headers: err.retryAfterSeconds ? { 'Retry-After': String(err.retryAfterSeconds) } : {} };
  }
  if (err instanceof StoreBusyError) return { status: 503, line: 'store database busy, retry', headers: { 'Retry-After': '1' } };
  return undefined;
}

/** Every route's failures, answered as failureAnswer says; the rest logged and 500. */
export const onError: ErrorHandler<OriginEnv> = (err, c) => {
  const log = c.get('deps')?.log;
  const answer = failureAnswer(err);
  if (err instanceof StoreBusyError) log?.warn({ msg: 'store database busy', path: c.req.path, error: err.message });
  if (answer) return send(c, answer.status, `${answer.line}\n`, TEXT, answer.headers);
  log?.error({ msg: 'internal error', path: c.req.path, error: err instanceof Error ? err.stack ?? err.message : String(err) });
  return send(c, 500, 'internal error\n', TEXT);
};
