/**
 * Admission control for one origin process: at most `maxPendingRequests`
 * requests being handled at once (a NAR counts until its handler returns, i.e.
 * until its body starts) and at most `maxNarStreams` NAR responses streaming at
 * once. Past either, the request gets 503 + Retry-After at once (Nix retries
 * 5xx) instead of holding memory and descriptors. /metrics is never refused
 * (middleware/admission counts requests in).
 */
import type { Metrics } from './metrics.ts';
import { StatusError } from './status-error.ts';

/** A request refused for lack of room; answered 503 with Retry-After (errors.ts). */
export class BusyError extends StatusError {
  override name = 'BusyError';
  declare readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 1) {
    super(503, message, retryAfterSeconds);
  }
}

export interface Admission {
  /** Counts a request in, or throws BusyError; the returned function counts it out (idempotent). */
  enterRequest(): () => void;
  /** Counts a NAR stream in, or throws BusyError; the returned function counts it out (idempotent). */
  enterNar(): () => void;
  readonly pendingRequests: number;
  readonly narStreams: number;
}

export function createAdmission(limits: { maxPendingRequests: number; maxNarStreams: number }, metrics: Metrics): Admission {
  let pending = 0;
  let streams = 0;
  const counter = (take: () => boolean, give: () => void, reason: string, message: string) => () => {
    if (!take()) {
      metrics.refused(reason);
      throw new BusyError(message);
    }
    let out = false;
    return () => {
      if (out) return;
      out = true;
      give();
    };
  };
  const admission: Admission = {
    enterRequest: counter(() => pending < limits.maxPendingRequests && ++pending > 0, () => pending--, 'pending_requests', 'origin busy: too many requests in progress, retry'),
    enterNar: counter(() => streams < limits.maxNarStreams && ++streams > 0, () => streams--, 'nar_streams', 'origin busy: too many NAR downloads in progress, retry'),
    get pendingRequests() {
      return pending;
    },
    get narStreams() {
      return streams;
    },
  };
  metrics.levels.eris_nar_streams = { help: 'NAR responses streaming now.', read: () => streams };
  metrics.levels.eris_pending_requests = { help: 'Requests being handled now (a NAR until its body starts).', read: () => pending };
  return admission;
}
