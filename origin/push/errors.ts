/**
 * Why a push was refused, as Nix's client shows it: one line and a status.
 * 4xx means the upload is wrong and retrying will not help; 503 (with
 * Retry-After) means try again shortly (staging full, store busy).
 */
export type PushStatus = 400 | 404 | 409 | 413 | 500 | 501 | 503;

export class PushError extends Error {
  override name = 'PushError';
  readonly status: PushStatus;
  readonly retryAfterSeconds?: number;
  constructor(status: PushStatus, message: string, retryAfterSeconds?: number) {
    super(message);
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export const rejected = (message: string) => new PushError(400, message);
export const tryLater = (message: string, seconds = 5) => new PushError(503, message, seconds);
