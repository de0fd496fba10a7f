/**
 * Why a push was refused, as Nix's client shows it: one line and a status.
 * 4xx means the upload is wrong and retrying will not help; 503 (with
 * Retry-After) means try again shortly (staging full, store busy).
 */
import { StatusError } from '../server/status-error.ts';

export type PushStatus = 400 | 404 | 409 | 413 | 500 | 501 | 503 | 507;

export class PushError extends StatusError {
  override name = 'PushError';
  declare readonly status: PushStatus;
  constructor(status: PushStatus, message: string, retryAfterSeconds?: number) {
    super(status, message, retryAfterSeconds);
  }
}

export const rejected = (message: string) => new PushError(400, message);
/** The disk would drop below min_free_bytes (retention/disk.ts says why 507). */
export const diskFull = (message: string) => new PushError(507, message);
export const tryLater = (message: string, seconds = 5) => new PushError(503, message, seconds);
