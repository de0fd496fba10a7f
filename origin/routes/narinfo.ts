import type { Context } from 'hono';
import { renderNarInfo } from '../../shared/narinfo.ts';
import { fingerprint } from '../../shared/fingerprint.ts';
import { isHashPart, storePathBaseName } from '../../shared/store-path.ts';
import type { PathInfo } from '../store/store.ts';
import type { OriginEnv, OriginDeps, AppSettings } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { URL_SUFFIX } from '../store/compress.ts';
import { send } from '../respond.ts';
import { narCacheKey } from '../store/nar-cache.ts';

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

async function lookupOr404(c: Context<OriginEnv>, ext: string): Promise<PathInfo> {
  const file = c.req.param('file') ?? '';
  const hashPart = file.slice(0, -ext.length);
  if (!isHashPart(hashPart)) throw badRequest(`malformed name: expected <32-character nix32 hash>${ext}`);
  const info = await c.get('deps').store.lookup(hashPart);
  if (!info) throw notFound('no such path');
  return info;
}

export async function getNarInfo(c: Context<OriginEnv>) {
  const info = await lookupOr404(c, '.narinfo');
  return send(c, 200, narInfoText(info, c.get('deps'), c.get('settings')), 'text/x-nix-narinfo');
}

/** `<hash>.ls`: the file listing `nix store ls --store https://…` reads instead of downloading the NAR. */
export async function getListing(c: Context<OriginEnv>) {
  const info = await lookupOr404(c, '.ls');
  const listing = await c.get('deps').store.listing(info);
  return send(c, 200, JSON.stringify(listing), 'application/json');
}
