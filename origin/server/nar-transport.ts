/**
 * How a NAR response leaves the origin: headers at once, then the body written
 * to the socket with backpressure, read buffers handed back to the pool once
 * the socket has taken them. A failure mid-body destroys the connection, so the
 * client sees a truncated body, never a clean end. Also the one place NAR
 * responses are counted in the metrics (GET and HEAD alike) and logged
 * (narDone; routes/nar-fast.ts, which answers small NARs below Hono, uses it too).
 */
import type { Context } from 'hono';
import { pipeline } from 'node:stream/promises';
import { PassThrough, Readable, Transform, type Duplex } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { OriginDeps, OriginEnv } from './types.ts';
import { recycleChunk } from '../store/buffer-pool.ts';
import { requestCache, requestToken, requestUser } from '../usage/request.ts';

/**
 * A NAR body: chunks to write straight to the socket, a pipeline of streams (compression, cache tee), or
 * (a small NAR) the whole body, made before the status goes out and written with the headers in one go.
 */
export type NarBody = { chunks: () => AsyncIterable<Buffer> } | { stages: () => (Readable | Duplex | Transform)[] } | { whole: () => Promise<Buffer> };

export interface NarResponse {
  status: number;
  headers: Record<string, string>;
  body: NarBody;
  /** For the log lines. */
  storePath: string;
  /** Called once when the body has ended, well or not (admission control counts the stream out). */
  onEnd?: () => void;
}

export type Done = (ok: boolean, bytes: number, err?: NodeJS.ErrnoException) => void;

/** Who a NAR went to, for the metrics, usage and log lines. */
export interface NarRecipient {
  /** The matched route's pattern (c.req.routePath). */
  route: string;
  user: string;
  cache: string;
  token: string;
}

/**
 * What happens when a NAR body has ended, well or not: the stream counted out (`onEnd`), the metrics,
 * usage and the log line. The one place NAR responses are accounted (the Hono route and routes/nar-fast.ts).
 */
export function narDone(deps: Pick<OriginDeps, 'metrics' | 'log' | 'usage'>, to: NarRecipient, storePath: string, status: number, started: number, onEnd?: () => void): Done {
  const { metrics, log, usage } = deps;
  return (ok, bytes, err) => {
    onEnd?.();
    const seconds = (performance.now() - started) / 1000;
    metrics.narStream(seconds, ok);
    metrics.sent(to.route, bytes);
    usage?.nar(to.user, to.cache, storePath, bytes, to.token);
    if (ok) log.info({ msg: 'nar sent', path: storePath, status, bytes, ms: Math.round(seconds * 1000) });
    else if (err?.code === 'ERR_STREAM_PREMATURE_CLOSE') log.info({ msg: 'nar download aborted by client', path: storePath, bytes });
    else log.error({ msg: 'nar stream failed', path: storePath, bytes, error: err?.message });
  };
}

/** A whole (small) NAR: headers and body leave in one write (one packet for a small NAR, no flush between them). */
export function sendWhole(out: ServerResponse, status: number, headers: Record<string, string>, whole: Buffer, done: Done): void {
  let ended = false;
  const end: Done = (...a) => void (ended || ((ended = true), done(...a)));
  out.writeHead(status, headers);
  out.end(whole, () => end(true, whole.length));
  out.once('close', () => out.writableFinished || end(false, 0, clientClosed()));
}

/** Sends a NAR response: to the Node socket when there is one, else (app.request in tests) as a web Response. */
export async function sendNar(c: Context<OriginEnv>, res: NarResponse): Promise<Response> {
  const route = c.req.routePath;
  const head = c.req.method === 'HEAD';
  const started = performance.now();
  // A failure here is the app's to answer (5xx, which Nix retries): no status has gone out yet.
  const whole = !head && 'whole' in res.body ? await res.body.whole() : undefined;
  c.get('deps').metrics.request(route, res.status, c.req.method);
  if (head) {
    res.onEnd?.();
    return new Response(null, { status: res.status, headers: res.headers });
  }
  const done = narDone(c.get('deps'), { route, user: requestUser(c), cache: requestCache(c), token: requestToken(c) }, res.storePath, res.status, started, res.onEnd);

  const out = c.env?.outgoing;
  if (whole !== undefined) {
    if (!out) {
      done(true, whole.length);
      return new Response(whole, { status: res.status, headers: res.headers });
    }
    sendWhole(out, res.status, res.headers, whole, done);
    return RESPONSE_ALREADY_SENT;
  }
  const body = res.body as Exclude<NarBody, { whole: unknown }>; // the whole-body case has returned above
  if (!out) return new Response(Readable.toWeb(Readable.from(counted(asIterable(body), done))) as ReadableStream, { status: res.status, headers: res.headers });

  out.writeHead(res.status, res.headers);
  // Headers leave at once: a proxy (Cloudflare closes reads idle for 120 s) sees the response start immediately.
  out.flushHeaders();
  let bytes = 0;
  const sending =
    'stages' in body
      ? // pipeline destroys every stage (and so the connection) on failure: the client sees a short body.
        pipeline([...body.stages(), counter((n) => (bytes += n)), out] as unknown as [Readable, ...Transform[]])
      : writeChunks(out, body.chunks(), (n) => (bytes += n));
  sending.then(
    () => done(true, bytes),
    (err: NodeJS.ErrnoException) => done(false, bytes, err),
  );
  return RESPONSE_ALREADY_SENT;
}

function asIterable(body: Exclude<NarBody, { whole: unknown }>): AsyncIterable<Buffer> {
  if ('chunks' in body) return body.chunks();
  const stages = body.stages();
  if (stages.length === 1) return stages[0]!;
  const sink = new PassThrough();
  pipeline([...stages, sink] as unknown as [Readable, PassThrough]).catch((err: Error) => sink.destroy(err));
  return sink;
}

async function* counted(source: AsyncIterable<Buffer>, done: Done): AsyncGenerator<Buffer> {
  let bytes = 0;
  let outcome: { ok: boolean; err?: NodeJS.ErrnoException } = { ok: false, err: Object.assign(new Error('reader cancelled'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }) };
  try {
    for await (const chunk of source) {
      bytes += chunk.length;
      yield chunk;
    }
    outcome = { ok: true };
  } catch (err) {
    outcome = { ok: false, err: err as NodeJS.ErrnoException };
    throw err;
  } finally {
    done(outcome.ok, bytes, outcome.err);
  }
}

/** Counts bytes on their way to the client. */
function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

const clientClosed = () => Object.assign(new Error('client closed the connection'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/** Resolves when `out` can take more, rejects if the client went away. */
function drained(out: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      out.off('drain', onDrain);
      reject(clientClosed());
    };
    out.once('drain', onDrain);
    out.once('close', onClose);
  });
}

/** Writes chunks to the socket with backpressure; on any failure the connection is destroyed, never ended cleanly. */
async function writeChunks(out: ServerResponse, chunks: AsyncIterable<Buffer>, onBytes: (n: number) => void): Promise<void> {
  try {
    for await (const chunk of chunks) {
      if (out.destroyed) throw clientClosed();
      onBytes(chunk.length);
      // Once the socket has taken it, the read buffer can hold the next chunk of some other download.
      if (!out.write(chunk, () => recycleChunk(chunk))) await drained(out);
    }
  } catch (err) {
    out.destroy();
    throw err;
  }
  await new Promise<void>((resolve, reject) => {
    out.end(() => resolve());
    out.once('error', reject);
  });
}
