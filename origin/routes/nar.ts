/**
 * NAR downloads, generated on the fly from the store path.
 *
 * URLs: `nar/<storehash>-<narhash>.nar` (ours and nix-serve's), harmonia's
 * `nar/<narhash>.nar?hash=<storehash>`, and `.nar.zstd` / `.nar.xz` for the
 * configured compression (never `.zst`: Cloudflare caches that by extension).
 * Uncompressed NARs carry Content-Length (the NarSize from the DB), an ETag
 * (the NAR hash) and honour single byte Ranges, as Nix uses to resume.
 * Compressed ones come from the on-disk cache (with Range) or are compressed
 * on the fly. A failure mid-stream destroys the connection: the client sees a
 * truncated body, never a clean end. Content-Encoding is never set.
 */
import type { Context } from 'hono';
import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import { Readable, Transform, type Duplex } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { isHashPart } from '../../shared/store-path.ts';
import { isSha256Nix32 } from '../../shared/hash.ts';
import type { OriginEnv } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { NO_STORE, send } from '../respond.ts';
import { parseRange } from '../http-range.ts';
import { createCompressor, URL_SUFFIX, type Compression } from '../store/compress.ts';
import type { PathInfo } from '../store/store.ts';
import { recycleChunk } from '../store/nar-stream.ts';

export interface NarRequest {
  hashPart: string;
  narHash: string;
  compression: Compression;
}

const SUFFIXES: [string, Compression][] = [['.nar', 'none'], [URL_SUFFIX.zstd, 'zstd'], [URL_SUFFIX.xz, 'xz']];

/** Parse a NAR file name (+ optional `hash` query) or say why it is malformed. */
export function parseNarRequest(file: string, hashQuery: string | undefined): NarRequest | string {
  const match = SUFFIXES.find(([suffix]) => file.endsWith(suffix));
  if (!match) return 'unsupported NAR URL: expected a name ending in .nar, .nar.zstd or .nar.xz';
  const [suffix, compression] = match;
  const stem = file.slice(0, -suffix.length);
  if (stem.length === 32 + 1 + 52 && stem[32] === '-') {
    const hashPart = stem.slice(0, 32);
    const narHash = stem.slice(33);
    if (isHashPart(hashPart) && isSha256Nix32(narHash)) return { hashPart, narHash, compression };
  } else if (isSha256Nix32(stem)) {
    if (hashQuery === undefined) return 'NAR URL lacks the store path hash (?hash=<32-character hash>)';
    if (isHashPart(hashQuery)) return { hashPart: hashQuery, narHash: stem, compression };
    return 'malformed hash query parameter';
  }
  return 'malformed NAR URL: expected nar/<store hash>-<nar hash>.nar';
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

export async function getNar(c: Context<OriginEnv>) {
  const parsed = parseNarRequest(c.req.param('file') ?? '', c.req.query('hash'));
  if (typeof parsed === 'string') throw badRequest(parsed);
  const { store, log, metrics, narCache } = c.get('deps');
  const settings = c.get('settings');
  if (parsed.compression !== 'none' && parsed.compression !== settings.compression) throw notFound(`this cache does not serve ${parsed.compression} NARs`);
  const info = await store.lookup(parsed.hashPart);
  // A path that is gone, or was replaced by one with other contents, is simply not here.
  if (!info || info.narHash !== `sha256:${parsed.narHash}`) throw notFound('no such NAR');
  // Files gone while the row is still there: being garbage-collected (404 once the row is gone), or a broken store.
  // Either way say so before a 200 goes out.
  if (!(await store.present(info))) {
    if (!(await store.isValid(info.storePath))) throw notFound('no such NAR');
    throw new Error(`store path ${info.storePath} is registered but missing on disk`);
  }

  const isHead = c.req.method === 'HEAD';
  const out = c.env?.outgoing;
  const base = { 'Content-Type': 'application/x-nix-nar', 'Cache-Control': NO_STORE };

  let status = 200;
  let headers: Record<string, string>;
  // Either chunks to write straight to the socket, or a pipeline of streams.
  let body: () => AsyncIterable<Buffer> | (Readable | Duplex | Transform)[];

  const cacheKey = `${parsed.narHash}${parsed.compression === 'none' ? '' : URL_SUFFIX[parsed.compression]}`;
  const cached = parsed.compression !== 'none' ? narCache?.get(cacheKey) : undefined;
  if (parsed.compression === 'none' || cached) {
    // A body of known size: Range, ETag, Content-Length.
    const size = cached ? cached.fileSize : info.narSize;
    const etag = `"${cached ? cached.fileHash.slice(7) : parsed.narHash}"`;
    const ifRange = c.req.header('if-range');
    const range = ifRange !== undefined && ifRange !== etag ? { kind: 'full' as const } : parseRange(c.req.header('range'), size);
    if (range.kind === 'unsatisfiable') {
      return send(c, 416, '', 'application/x-nix-nar', { 'Content-Range': `bytes */${size}` });
    }
    const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, size];
    status = range.kind === 'partial' ? 206 : 200;
    headers = { ...base, 'Accept-Ranges': 'bytes', ETag: etag, 'Content-Length': String(end - start) };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
    body = cached
      ? () => createReadStream(cached.path, { start, end: end - 1, highWaterMark: 1024 * 1024 })
      : () => store.narChunks(info, status === 206 ? { start, end } : undefined);
  } else {
    // Compressed on the fly: the size is unknown until the end, so no Range here.
    const method = parsed.compression;
    headers = { ...base, 'Accept-Ranges': 'none' };
    body = () => {
      const stages: (Readable | Duplex | Transform)[] = [store.nar(info), createCompressor(method, settings.compressionLevel)];
      const tee = narCache?.tee(cacheKey);
      if (tee) stages.push(tee);
      return stages;
    };
  }

  if (isHead || !out) {
    // HEAD, or no Node response to write to (app.request in tests): a plain Response.
    let stream: ReadableStream | null = null;
    if (!isHead) {
      const b = body();
      stream = Readable.toWeb(Array.isArray(b) ? (b.reduce((a, s) => a.pipe(s as Transform)) as Readable) : Readable.from(b)) as ReadableStream;
    }
    return new Response(stream, { status, headers });
  }
  metrics.request('/nar/:file', status);
  await sendStream(out, status, headers, body, info, (ok, bytes, seconds) => {
    metrics.narStream(seconds, ok);
    metrics.sent('/nar/:file', bytes);
    if (ok) log.info({ msg: 'nar sent', path: info.storePath, status, bytes, ms: Math.round(seconds * 1000) });
  }, log);
  return RESPONSE_ALREADY_SENT;
}

/** Resolves when `out` can take more, rejects if the client went away. */
function drained(out: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      out.off('drain', onDrain);
      reject(Object.assign(new Error('client closed the connection'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    out.once('drain', onDrain);
    out.once('close', onClose);
  });
}

/** Writes chunks to the socket with backpressure; on any failure the connection is destroyed, never ended cleanly. */
async function writeChunks(out: ServerResponse, chunks: AsyncIterable<Buffer>, onBytes: (n: number) => void): Promise<void> {
  try {
    for await (const chunk of chunks) {
      if (out.destroyed) throw Object.assign(new Error('client closed the connection'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
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

async function sendStream(
  out: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: () => AsyncIterable<Buffer> | (Readable | Duplex | Transform)[],
  info: PathInfo,
  done: (ok: boolean, bytes: number, seconds: number) => void,
  log: { info(e: Record<string, unknown>): void; error(e: Record<string, unknown>): void },
) {
  const started = performance.now();
  let bytes = 0;
  const source = body();
  out.writeHead(status, headers);
  // Headers leave at once: a proxy (Cloudflare closes reads idle for 120 s) sees the response start immediately.
  out.flushHeaders();
  const sending = Array.isArray(source)
    ? // pipeline destroys every stage (and so the connection) on failure: the client sees a short body.
      pipeline([...source, counter((n) => (bytes += n)), out] as unknown as [Readable, ...Transform[]])
    : writeChunks(out, source, (n) => (bytes += n));
  sending.then(
    () => done(true, bytes, (performance.now() - started) / 1000),
    (err: NodeJS.ErrnoException) => {
      done(false, bytes, (performance.now() - started) / 1000);
      if (err.code === 'ERR_STREAM_PREMATURE_CLOSE') log.info({ msg: 'nar download aborted by client', path: info.storePath, bytes });
      else log.error({ msg: 'nar stream failed', path: info.storePath, bytes, error: err.message });
    },
  );
}
