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
import { countSentBody, type SentBody } from './sent-body.ts';

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
    const counted = countSentBody(res.body, length, (sent) => {
      write(sent);
      finished();
    });
    // Same status and headers (immutable ones included), the counted body.
    c.res = undefined as unknown as Response;
    c.res = new Response(withLength(counted, length), { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/**
 * workerd sends a body from a JS stream chunked, dropping the Content-Length
 * (which Nix shows and curl's resume relies on): through a FixedLengthStream
 * it keeps it. A cut on either side still reaches the other through the pipe.
 * Elsewhere (Node, the unit tests) the stream is sent as it is.
 */
function withLength(body: ReadableStream<Uint8Array>, length: number | null): ReadableStream<Uint8Array> {
  if (length === null || typeof FixedLengthStream === 'undefined') return body;
  const fixed = new FixedLengthStream(length);
  body.pipeTo(fixed.writable).catch(() => {});
  return fixed.readable;
}

/** waitUntil when the runtime has it (not under app.request in unit tests), so the line is written after the response. */
function keepAlive(c: Context<EdgeEnv>, p: Promise<void>) {
  try {
    c.executionCtx.waitUntil(p);
  } catch {
    // no execution context: nothing to keep alive
  }
}
