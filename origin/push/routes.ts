/**
 * HTTP side of push: `PUT` at the paths Nix uploads to (bare, or under
 * `/<cache>/`; the cache selector has already picked the cache), and `GET`/
 * `HEAD` of the NAR files pushers uploaded (`nar/<filehash>.nar.xz`, what the
 * pusher's own narinfo cache points at). Handlers are thin: they parse the
 * path and hand the body stream on.
 */
import type { Context, Handler } from 'hono';
import { createReadStream } from 'node:fs';
import { spawn } from 'node:child_process';
import { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULT_CACHE_NAME, cacheOfPath } from '../../shared/caches.ts';
import { pathAsNixMeantIt } from '../../shared/nix-url.ts';
import { USER_HEADER } from '../../shared/contract.ts';
import { parseStorePath } from '../../shared/store-path.ts';
import { parseUploadPath, type UploadCompression } from '../../shared/upload.ts';
import type { OriginEnv } from '../server/types.ts';
import { NO_STORE, send, TEXT } from '../server/respond.ts';
import { failureAnswer } from '../server/errors.ts';
import { createCompressor } from '../compression/compress.ts';
import { PushError } from './errors.ts';
import { requestCache, requestToken, requestUser } from '../usage/request.ts';
import type { PushTarget } from './service.ts';

/** Where Nix PUTs, relative to a cache's root (the same shapes the GET routes have). */
export const PUSH_PATHS = ['/:file{[^/]+\\.narinfo}', '/:file{[^/]+\\.ls}', '/nar/:file', '/log/:drv', '/realisations/:file'] as const;

/** The upload path within the cache: `nar/…`, `<hash>.narinfo`, `log/<drv>` with any `?` in the name (shared/nix-url.ts), … */
const uploadPathOf = (c: Context<OriginEnv>) => cacheOfPath(pathAsNixMeantIt(c.req.url)).rest.slice(1);

/** The request body as a Node stream. */
export function pushBody(c: Context<OriginEnv>): Readable {
  const incoming = c.env?.incoming;
  if (incoming) return incoming as unknown as Readable;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as import('node:stream/web').ReadableStream) : Readable.from([]);
}

/** The request's Content-Length when it is a plain decimal number (undefined when absent or malformed). */
export function contentLength(c: Context<OriginEnv>): number | undefined {
  const length = c.req.header('content-length');
  return length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
}

/** The cache this request was routed to, as push sees it. */
export function pushTarget(c: Context<OriginEnv>): PushTarget {
  const deps = c.get('deps');
  return {
    name: c.get('cache') ?? DEFAULT_CACHE_NAME,
    signers: deps.signers,
    // The cache's view of the store answers only for its published paths.
    isPublished: async (storePath) => (await deps.store.lookup(parseStorePath(storePath, deps.store.storeDir).hashPart)) !== undefined,
    settle: deps.push?.refreshPublished,
  };
}

/** A PushError as its status and one line (anything else is rethrown: a 500). */
export function pushFailure(c: Context<OriginEnv>, err: unknown) {
  const log = c.get('deps').log;
  if (!(err instanceof PushError)) throw err;
  if (err.status >= 500) log.error({ msg: 'push failed', path: c.req.path, error: err.message });
  // With the query: a part's offset is there (tests count every part that reached the origin).
  else log.info({ msg: 'push refused', path: c.req.path + new URL(c.req.url).search, status: err.status, reason: err.message, user: c.req.header(USER_HEADER) ?? null });
  const { status, line, headers } = failureAnswer(err)!;
  if (status === 413 || status === 400) headers.Connection = 'close'; // the rest of a refused body is not worth reading
  return send(c, status, line + '\n', TEXT, headers);
}

export async function putUpload(c: Context<OriginEnv>) {
  const push = c.get('deps').push;
  // Off: the same 404 as any unknown route had before push existed, with the reason.
  if (!push) return send(c, 404, 'push is not enabled on this origin (set push_dir)\n', TEXT, { Connection: 'close' });
  const upload = parseUploadPath(uploadPathOf(c));
  if (typeof upload === 'string') return send(c, 400, upload + '\n', TEXT, { Connection: 'close' });
  const length = contentLength(c);
  try {
    const r = await push.service.put(pushTarget(c), upload, pushBody(c), length, c.req.header(USER_HEADER));
    const usage = c.get('deps').usage;
    if (upload.kind === 'nar') usage?.received(requestUser(c), requestCache(c), r.bytes ?? 0, requestToken(c));
    else if (upload.kind === 'narinfo') {
      usage?.pushed(requestUser(c), requestCache(c), requestToken(c), r.path);
      c.get('deps').retention?.afterPush(requestCache(c));
    }
    return send(c, r.status, r.message + '\n', TEXT);
  } catch (e) {
    return pushFailure(c, e);
  }
}

function compressor(method: Exclude<UploadCompression, 'none'>): Duplex {
  if (method === 'xz' || method === 'zstd') return createCompressor(method, 3) as Duplex;
  const child = spawn('bzip2', ['-c'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const d = Duplex.from({ writable: child.stdin, readable: child.stdout });
  d.once('close', () => child.exitCode === null && child.kill('SIGTERM'));
  return d;
}

/** A pushed file's name (`nar/<filehash>.nar[.xz|.zst|.bz2]`, no `?hash=`), or undefined for the NAR route's own URLs. */
function pushedFile(c: Context<OriginEnv>): string | undefined {
  if (!c.get('deps').push || c.req.query('hash') !== undefined) return undefined;
  const upload = parseUploadPath(uploadPathOf(c));
  return typeof upload !== 'string' && upload.kind === 'nar' ? upload.file : undefined;
}

/** The NAR route, answering the NAR files pushers uploaded before it answers its own URLs. */
export function withPushedNars(getNar: Handler<OriginEnv>): Handler<OriginEnv> {
  return (c, next) => {
    const file = pushedFile(c);
    return file === undefined ? getNar(c, next) : getPushedNar(c, file);
  };
}

async function getPushedNar(c: Context<OriginEnv>, file: string): Promise<Response> {
  const { push, store, metrics } = c.get('deps');
  const found = await push!.kept.find(c.get('cache') ?? DEFAULT_CACHE_NAME, file);
  if (!found) return send(c, 404, 'no such NAR\n', TEXT);
  // A path this file is the NAR of, still in this cache with that NAR; else (gone, replaced, unpublished) not here.
  let info;
  for (const p of found.record.storePaths) {
    const candidate = await store.lookup(parseStorePath(p, store.storeDir).hashPart);
    if (candidate && candidate.narHash === found.record.narHash) {
      info = candidate;
      break;
    }
  }
  if (!info) return send(c, 404, 'no such NAR\n', TEXT);
  const headers: Record<string, string> = { 'Content-Type': 'application/x-nix-nar', 'Cache-Control': NO_STORE };
  if (found.path) headers['Content-Length'] = String(found.record.fileSize);
  metrics.request('/nar/:file', 200);
  if (c.req.method === 'HEAD') return new Response(null, { status: 200, headers });
  let body: Readable;
  if (found.path) body = createReadStream(found.path, { highWaterMark: 1024 * 1024 });
  else {
    // The kept file was evicted: the same NAR, compressed the same way afresh.
    const method = found.record.compression;
    if (method === 'none') body = store.nar(info);
    else {
      const out = compressor(method);
      pipeline(store.nar(info), out).catch(() => {}); // a failure destroys `out`: the client sees a cut body
      body = out;
    }
  }
  return new Response(Readable.toWeb(body) as ReadableStream, { status: 200, headers });
}
