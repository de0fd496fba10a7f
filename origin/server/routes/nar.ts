/**
 * NAR downloads, generated on the fly from the store path.
 *
 * URLs: `nar/<storehash>-<narhash>.nar` (ours and nix-serve's), harmonia's
 * `nar/<narhash>.nar?hash=<storehash>`, and `.nar.zstd` / `.nar.xz` for the
 * configured compression (never `.zst`: Cloudflare caches that by extension).
 * Uncompressed NARs carry Content-Length (the NarSize from the DB), an ETag
 * (the NAR hash) and honour single byte Ranges, as Nix uses to resume.
 * Compressed ones come from the on-disk cache (with Range) or are compressed
 * on the fly. How the body leaves (and is counted) is nar-transport.ts's
 * business. Content-Encoding is never set.
 */
import type { Context } from 'hono';
import { createReadStream } from 'node:fs';
import { HASH_PART_LENGTH, isHashPart } from '../../../shared/store-path.ts';
import { SHA256_NIX32_LENGTH, isSha256Nix32 } from '../../../shared/hash.ts';
import type { OriginEnv } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { NO_STORE, send } from '../respond.ts';
import { parseRange } from '../http-range.ts';
import { URL_SUFFIX, type Compression } from '../../compression/compress.ts';
import { CompressionRefusedError } from '../../compression/slots.ts';
import { BusyError } from '../admission.ts';
import { narCacheKey } from '../../compression/nar-cache.ts';
import type { PathInfo } from '../../store/store.ts';
import { sendNar, type NarBody } from '../nar-transport.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

export interface NarRequest {
  hashPart: string;
  narHash: string;
  compression: Compression;
}

/**
 * Uncompressed NARs up to this size are made whole with synchronous reads and sent with their headers in
 * one write (store/nar-stream.ts's narBuffer): a closure is mostly such paths, and each one's dozen
 * thread-pool round trips were most of its time. The event loop waits for at most this much reading.
 */
export const SMALL_NAR_BYTES = 64 * 1024;

const NAR_HEADERS = { 'Content-Type': CONTENT_TYPE.nar, 'Cache-Control': NO_STORE };

/** The headers of a NAR body of known size (`etag`: quoted), which takes Range requests. */
export function rangedNarHeaders(etag: string, length: number): Record<string, string> {
  return { ...NAR_HEADERS, 'Accept-Ranges': 'bytes', ETag: etag, 'Content-Length': String(length) };
}

const SUFFIXES: [string, Compression][] = [['.nar', 'none'], [URL_SUFFIX.zstd, 'zstd'], [URL_SUFFIX.xz, 'xz']];

/** Parse a NAR file name (+ optional `hash` query) or say why it is malformed. */
export function parseNarRequest(file: string, hashQuery: string | undefined): NarRequest | string {
  const match = SUFFIXES.find(([suffix]) => file.endsWith(suffix));
  if (!match) return 'unsupported NAR URL: expected a name ending in .nar, .nar.zstd or .nar.xz';
  const [suffix, compression] = match;
  const stem = file.slice(0, -suffix.length);
  if (stem.length === HASH_PART_LENGTH + 1 + SHA256_NIX32_LENGTH && stem[HASH_PART_LENGTH] === '-') {
    const hashPart = stem.slice(0, HASH_PART_LENGTH);
    const narHash = stem.slice(HASH_PART_LENGTH + 1);
    if (isHashPart(hashPart) && isSha256Nix32(narHash)) return { hashPart, narHash, compression };
  } else if (isSha256Nix32(stem)) {
    if (hashQuery === undefined) return 'NAR URL lacks the store path hash (?hash=<32-character hash>)';
    if (isHashPart(hashQuery)) return { hashPart: hashQuery, narHash: stem, compression };
    return 'malformed hash query parameter';
  }
  return 'malformed NAR URL: expected nar/<store hash>-<nar hash>.nar';
}

export async function getNar(c: Context<OriginEnv>) {
  const parsed = parseNarRequest(c.req.param('file') ?? '', c.req.query('hash'));
  if (typeof parsed === 'string') throw badRequest(parsed);
  const { store } = c.get('deps');
  const settings = c.get('settings');
  if (parsed.compression !== 'none' && parsed.compression !== settings.compression) throw notFound(`this cache does not serve ${parsed.compression} NARs`);
  const info = await store.lookup(parsed.hashPart);
  // A path that is gone, or was replaced by one with other contents, is simply not here.
  if (!info || info.narHash !== `sha256:${parsed.narHash}`) throw notFound('no such NAR');
  // Nix's GC must leave the path alone until the body has left: a temporary root first, then the checks.
  // A small whole NAR is read completely, and checked against NarSize, before its status goes out
  // (SMALL_NAR_BYTES): a collection racing it makes a 500 that Nix retries, never a wrong body — no root.
  const whole = parsed.compression === 'none' && c.req.header('range') === undefined && info.narSize <= SMALL_NAR_BYTES;
  const rooted = c.req.method !== 'HEAD' && !whole;
  const unroot = rooted ? await holdRoot(c, info.storePath) : () => {};
  let release = unroot;
  try {
    // The collector may have taken the path just before the root: valid now means valid until the end.
    if (rooted && !(await store.isValid(info.storePath))) throw notFound('no such NAR');
    // Say so before a 200 goes out.
    const state = await store.narState(info);
    if (state === 'gone') throw notFound('no such NAR');
    if (state === 'broken') throw new Error(`store path ${info.storePath} is registered but missing on disk`);
    // One of at most max_nar_streams bodies in flight (HEAD sends none), counted out when it ends.
    const leave = c.req.method === 'HEAD' ? () => {} : (c.get('deps').admission?.enterNar() ?? (() => {}));
    release = () => {
      leave();
      unroot();
    };
  } catch (e) {
    unroot();
    throw e;
  }
  try {
    return await respond(c, info, parsed, release);
  } catch (e) {
    release();
    throw e;
  }
}

/** A temporary GC root on the path (released by the returned function); without one when roots are off or the daemon fails. */
async function holdRoot(c: Context<OriginEnv>, storePath: string): Promise<() => void> {
  const { tempRoots, log } = c.get('deps');
  if (!tempRoots) return () => {};
  try {
    return (await tempRoots.hold([storePath])).release;
  } catch (e) {
    log.warn({ msg: 'no temporary GC root for a NAR: serving without (a garbage collection may cut it off)', path: storePath, error: (e as Error).message });
    return () => {};
  }
}

async function respond(c: Context<OriginEnv>, info: PathInfo, parsed: NarRequest, release: () => void): Promise<Response> {
  const { store, narCache, compressions, metrics } = c.get('deps');
  const method = parsed.compression;
  const cacheKey = method === 'none' ? undefined : narCacheKey(info.narHash, method);
  const cached = cacheKey ? narCache?.get(cacheKey) : undefined;

  if (method === 'none' || cached) {
    // A body of known size: Range, ETag, Content-Length.
    const size = cached ? cached.fileSize : info.narSize;
    const etag = `"${cached ? cached.fileHash.slice('sha256:'.length) : parsed.narHash}"`;
    const ifRange = c.req.header('if-range');
    const range = ifRange !== undefined && ifRange !== etag ? { kind: 'full' as const } : parseRange(c.req.header('range'), size);
    if (range.kind === 'unsatisfiable') {
      release();
      return send(c, 416, '', CONTENT_TYPE.nar, { 'Content-Range': `bytes */${size}` });
    }
    const [start, end] = range.kind === 'partial' ? [range.start, range.end] : [0, size];
    const status = range.kind === 'partial' ? 206 : 200;
    const headers = rangedNarHeaders(etag, end - start);
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
    const body: NarBody = cached
      ? { stages: () => [createReadStream(cached.path, { start, end: end - 1, highWaterMark: 1024 * 1024 })] }
      : status === 200 && size <= SMALL_NAR_BYTES
        ? { whole: () => store.narBuffer(info) }
        : { chunks: () => store.narChunks(info, status === 206 ? { start, end } : undefined) };
    return sendNar(c, { status, headers, body, storePath: info.storePath, onEnd: release });
  }
  // Compressed on the fly, once for every request that wants it now (compression/flights.ts): the size
  // is unknown until the end, so no Range here.
  const headers = { ...NAR_HEADERS, 'Accept-Ranges': 'none' };
  if (c.req.method === 'HEAD') return sendNar(c, { status: 200, headers, body: { chunks: async function* () {} }, storePath: info.storePath });
  let follower;
  try {
    follower = await compressions!.join(cacheKey!, info);
  } catch (e) {
    if (!(e instanceof CompressionRefusedError)) throw e;
    metrics.refused('compression_queue');
    throw new BusyError('origin busy: too many compressions waiting, retry', 2);
  }
  const leave = () => follower.leave();
  c.req.raw.signal.addEventListener('abort', leave, { once: true });
  c.env?.outgoing?.once('close', leave);
  return sendNar(c, { status: 200, headers, body: { chunks: () => follower.chunks() }, storePath: info.storePath, onEnd: release });
}
