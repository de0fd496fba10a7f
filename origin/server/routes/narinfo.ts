import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { renderNarInfo } from '../../../shared/narinfo.ts';
import { fingerprint } from '../../../shared/fingerprint.ts';
import { isHashPart, storePathBaseName } from '../../../shared/store-path.ts';
import type { PathInfo } from '../../store/store.ts';
import type { OriginEnv, OriginDeps, AppSettings } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { URL_SUFFIX } from '../../compression/compress.ts';
import { send, sentHeaders } from '../respond.ts';
import { narCacheKey } from '../../compression/nar-cache.ts';
import type { SignatureCache } from '../signature-cache.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

/** The NAR URL we advertise: store hash part and NAR hash, nix-serve style, plus the compression suffix. */
export function narUrl(info: PathInfo, suffix = '.nar'): string {
  return `nar/${info.hashPart}-${info.narHash.slice('sha256:'.length)}${suffix}`;
}

export function narInfoText(info: PathInfo, deps: Pick<OriginDeps, 'signatures' | 'narCache'>, settings: Pick<AppSettings, 'compression'>): string {
  const fp = fingerprint(info.storePath, info.narHash, info.narSize, info.references);
  let url = narUrl(info);
  let fileHash: string | undefined;
  let fileSize: number | undefined;
  if (settings.compression !== 'none') {
    const suffix = URL_SUFFIX[settings.compression];
    url = narUrl(info, suffix);
    // Exact FileHash/FileSize once the compressed NAR is in the on-disk cache; until then Nix does without.
    const cached = deps.narCache?.get(narCacheKey(info.narHash, settings.compression));
    if (cached) [fileHash, fileSize] = [cached.fileHash, cached.fileSize];
  }
  return renderNarInfo({
    storePath: info.storePath,
    url,
    compression: settings.compression,
    fileHash,
    fileSize,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references.map(storePathBaseName),
    deriver: info.deriver ? storePathBaseName(info.deriver) : undefined,
    sigs: deps.signatures.withOurs(info.sigs, fp),
    ca: info.ca,
  });
}

/** A narinfo as sent, and what it was rendered from besides the path info. */
export interface Rendered {
  body: Uint8Array<ArrayBuffer>;
  /**
   * The same text as a string when it is all ASCII (it is unless a stored signature is not): Node writes a
   * string body together with the headers in one `write`, a byte body in a `writev` of two buffers.
   */
  ascii: string | undefined;
  compression: string;
  fileHash: string | undefined;
  /**
   * The response headers respond.ts's send() gives a narinfo, as the flat `[name, value, …]` array
   * `res.writeHead` takes without copying (the fast path's; rendered with the body, not per request).
   */
  headers: string[];
}

/**
 * Rendered narinfos, once per path version and signer set. The outer key is the SignatureCache, of which
 * there is one per set of signing keys (so a cache that signs with its own keys has its own entries);
 * the inner key is the PathInfo object itself: the store keeps handing out the same object until Nix
 * writes to the DB (a data_version change drops its whole cache), then a new one, so a text never
 * outlives the DB version it came from. FileHash/FileSize appear once a compressed NAR is cached, so
 * those are compared on every hit. WeakMaps: entries go with the store's cache entries.
 */
const utf8 = new TextEncoder();
const renderedBySigners = new WeakMap<SignatureCache, WeakMap<PathInfo, Rendered>>();

export function narInfoBody(info: PathInfo, deps: Pick<OriginDeps, 'signatures' | 'narCache'>, settings: Pick<AppSettings, 'compression'>): Uint8Array<ArrayBuffer> {
  return renderedNarInfo(info, deps, settings).body;
}

/** The narinfo of `info` as sent (narInfoBody), rendered once per path version, signer set and FileHash. */
export function renderedNarInfo(info: PathInfo, deps: Pick<OriginDeps, 'signatures' | 'narCache'>, settings: Pick<AppSettings, 'compression'>): Rendered {
  let byPath = renderedBySigners.get(deps.signatures);
  if (!byPath) renderedBySigners.set(deps.signatures, (byPath = new WeakMap()));
  const { compression } = settings;
  const fileHash = compression === 'none' ? undefined : deps.narCache?.get(narCacheKey(info.narHash, compression))?.fileHash;
  const hit = byPath.get(info);
  if (hit && hit.compression === compression && hit.fileHash === fileHash) return hit;
  const text = narInfoText(info, deps, settings);
  const body = utf8.encode(text);
  const headers = sentHeaders(CONTENT_TYPE.narinfo, body.byteLength);
  const rendered = { body, ascii: body.byteLength === text.length ? text : undefined, compression, fileHash, headers };
  byPath.set(info, rendered);
  return rendered;
}

/** The line of a narinfo (or listing) miss: 404, as Nix takes it (narinfo-fast.ts answers the same). */
export const NO_SUCH_PATH = 'no such path';

async function lookupOr404(c: Context<OriginEnv>, ext: string): Promise<PathInfo> {
  const file = c.req.param('file') ?? '';
  const hashPart = file.slice(0, -ext.length);
  if (!isHashPart(hashPart)) throw badRequest(`malformed name: expected <32-character nix32 hash>${ext}`);
  const info = await c.get('deps').store.lookup(hashPart);
  if (!info) throw notFound(NO_SUCH_PATH);
  return info;
}

export async function getNarInfo(c: Context<OriginEnv>) {
  const started = performance.now();
  const deps = c.get('deps');
  let info;
  try {
    info = await lookupOr404(c, '.narinfo');
  } catch (e) {
    if (e instanceof HTTPException && e.status === 404) deps.metrics.narinfo((performance.now() - started) / 1000, false);
    throw e;
  }
  const res = send(c, 200, narInfoBody(info, deps, c.get('settings')), CONTENT_TYPE.narinfo);
  deps.metrics.narinfo((performance.now() - started) / 1000, true);
  return res;
}

/** `<hash>.ls`: the file listing `nix store ls --store https://…` reads instead of downloading the NAR. */
export async function getListing(c: Context<OriginEnv>) {
  const info = await lookupOr404(c, '.ls');
  const listing = await c.get('deps').store.listing(info);
  return send(c, 200, JSON.stringify(listing), CONTENT_TYPE.json);
}
