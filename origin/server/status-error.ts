/**
 * A failure that knows its answer: a status, one line, and when to retry.
 * Features refuse requests with it (or a subclass: BusyError, PushError);
 * server/errors.ts turns every one into its response the same way.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status';

export class StatusError extends Error {
  override name = 'StatusError';
  readonly status: ContentfulStatusCode;
  /** Sent as Retry-After (a 503 the client should retry). */
  readonly retryAfterSeconds?: number;
  constructor(status: ContentfulStatusCode, message: string, retryAfterSeconds?: number) {
    super(message);
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
