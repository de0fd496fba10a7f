/**
 * NAR downloads, generated on the fly from the store path. Accepts the URL we
 * advertise and nix-serve's (`nar/<storehash>-<narhash>.nar`) and harmonia's
 * (`nar/<narhash>.nar?hash=<storehash>`). Content-Length is the NarSize from
 * the DB; a failure mid-stream destroys the connection so the client sees a
 * truncated body, never a clean end.
 */
import type { Context } from 'hono';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { isHashPart } from '../../shared/store-path.ts';
import { isSha256Nix32 } from '../../shared/hash.ts';
import type { OriginEnv } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { NO_STORE } from '../middleware/no-store/index.ts';

export interface NarRequest {
  hashPart: string;
  narHash: string;
}

/** Parse a NAR file name (+ optional `hash` query) or say why it is malformed. */
export function parseNarRequest(file: string, hashQuery: string | undefined): NarRequest | string {
  if (!file.endsWith('.nar')) return 'unsupported NAR URL: expected a name ending in .nar';
  const stem = file.slice(0, -4);
  if (stem.length === 32 + 1 + 52 && stem[32] === '-') {
    const hashPart = stem.slice(0, 32);
    const narHash = stem.slice(33);
    if (isHashPart(hashPart) && isSha256Nix32(narHash)) return { hashPart, narHash };
  } else if (isSha256Nix32(stem)) {
    if (hashQuery === undefined) return 'NAR URL lacks the store path hash (?hash=<32-character hash>)';
    if (isHashPart(hashQuery)) return { hashPart: hashQuery, narHash: stem };
    return 'malformed hash query parameter';
  }
  return 'malformed NAR URL: expected nar/<store hash>-<nar hash>.nar';
}

export async function getNar(c: Context<OriginEnv>) {
  const parsed = parseNarRequest(c.req.param('file') ?? '', c.req.query('hash'));
  if (typeof parsed === 'string') throw badRequest(parsed);
  const { store, log } = c.get('deps');
  const info = store.lookup(parsed.hashPart);
  // A path that is gone, or was replaced by one with other contents, is simply not here.
  if (!info || info.narHash !== `sha256:${parsed.narHash}`) throw notFound('no such NAR');

  const headers = {
    'Content-Type': 'application/x-nix-nar',
    'Content-Length': String(info.narSize),
    'Cache-Control': NO_STORE,
  };
  const out = c.env?.outgoing;
  if (c.req.method === 'HEAD' || !out) {
    // HEAD, or no Node response to write to (app.request in tests): a plain Response.
    const body = c.req.method === 'HEAD' ? null : (Readable.toWeb(store.nar(info)) as ReadableStream);
    return new Response(body, { status: 200, headers });
  }
  out.writeHead(200, headers);
  // Headers leave at once: a proxy (Cloudflare closes reads idle for 120 s) sees the response start immediately.
  out.flushHeaders();
  const started = performance.now();
  pipeline(store.nar(info), out).then(
    () => log.info({ msg: 'nar sent', path: info.storePath, bytes: info.narSize, ms: Math.round(performance.now() - started) }),
    (err: NodeJS.ErrnoException) => {
      // pipeline already destroyed the response: the client sees a short body.
      if (err.code === 'ERR_STREAM_PREMATURE_CLOSE') log.info({ msg: 'nar download aborted by client', path: info.storePath });
      else log.error({ msg: 'nar stream failed', path: info.storePath, error: err.message });
    },
  );
  return RESPONSE_ALREADY_SENT;
}
