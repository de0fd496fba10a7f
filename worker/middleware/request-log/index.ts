/**
 * One JSON line per request: method, path, status, user, token id (never the token), how long, what left
 * (`bytes` counted as the body streams, and `body`: complete, cut-origin,
 * cut-client, or none), and — since 401s look like misses to Nix — why
 * authentication failed; for proxied requests, which origin answered, how
 * many were asked and how each did, in how many ms. Never a credential.
 *
 * The line is written when the body has ended, so `ms` is the whole request
 * and a NAR cut because its origin died (or its client left) reads as cut,
 * with the bytes that left, not as a 200 of its Content-Length. The write is
 * kept alive with waitUntil where the runtime has it.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { EdgeEnv } from '../../types.ts';
import type { Clock, Log } from '../../log.ts';
import { countIntoFixedLength, countSentBody, type SentBody } from './sent-body.ts';

export function requestLog(options: { log: Log; now: Clock }): MiddlewareHandler<EdgeEnv> {
  const { log, now } = options;
  return async function requestLogMiddleware(c, next) {
    const started = now();
    await next();
    const res = c.res;
    const write = (sent?: SentBody) => {
      const entry: Record<string, unknown> = {
        method: c.req.method,
        path: c.req.path,
        status: res.status,
        user: c.get('user') ?? null,
        token: c.get('tokenId') ?? null,
        ms: now() - started,
        bytes: sent?.bytes ?? 0,
      };
      // The length promised, when less left.
      if (sent && sent.end !== 'complete' && length !== null) entry.length = length;
      entry.body = sent?.end ?? 'none';
      if (sent?.error !== undefined) entry.error = sent.error;
      const failure = c.get('authFailure');
      if (failure) entry.auth = failure;
      const from = c.get('provenance');
      if (from) Object.assign(entry, from);
      log(entry);
    };
    const header = res.headers.get('content-length');
    const length = header !== null && /^\d+$/.test(header) ? Number(header) : null;
    // HEAD: Hono drops the body of the GET handler's answer after the middleware; nothing leaves.
    if (!res.body || c.req.method === 'HEAD') return write();
    let finished!: () => void;
    keepAlive(c, new Promise<void>((r) => (finished = r)));
    const report = (sent: SentBody) => {
      write(sent);
      finished();
    };
    const body = length !== null && typeof FixedLengthStream !== 'undefined' ? countIntoFixedLength(res.body, length, report) : countSentBody(res.body, length, report);
    // Same status and headers (immutable ones included), the counted body; under workerd with its Content-Length kept.
    c.res = undefined as unknown as Response;
    c.res = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** waitUntil when the runtime has it (not under app.request in unit tests), so the line is written after the response. */
function keepAlive(c: Context<EdgeEnv>, p: Promise<void>) {
  try {
    c.executionCtx.waitUntil(p);
  } catch {
    // no execution context: nothing to keep alive
  }
}
