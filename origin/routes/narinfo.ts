import type { Context } from 'hono';
import { renderNarInfo } from '../../shared/narinfo.ts';
import { fingerprint } from '../../shared/fingerprint.ts';
import { isHashPart, storePathBaseName } from '../../shared/store-path.ts';
import type { PathInfo } from '../store/store.ts';
import type { Signer } from '../../shared/signing.ts';
import type { OriginEnv } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';

/** The URL we advertise: the store hash part and the NAR hash, nix-serve style. */
export function narUrl(info: PathInfo): string {
  return `nar/${info.hashPart}-${info.narHash.slice('sha256:'.length)}.nar`;
}

export function narInfoText(info: PathInfo, signers: readonly Signer[]): string {
  const fp = fingerprint(info.storePath, info.narHash, info.narSize, info.references);
  const ours = new Set(signers.map((s) => s.name));
  // Keep signatures already in the DB (e.g. from another cache) unless one of our keys replaces them.
  const kept = info.sigs.filter((s) => !ours.has(s.slice(0, s.indexOf(':'))));
  return renderNarInfo({
    storePath: info.storePath,
    url: narUrl(info),
    compression: 'none',
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references.map(storePathBaseName),
    deriver: info.deriver ? storePathBaseName(info.deriver) : undefined,
    sigs: [...kept, ...signers.map((s) => s.sign(fp))],
    ca: info.ca,
  });
}

export function getNarInfo(c: Context<OriginEnv>) {
  const file = c.req.param('file') ?? '';
  const hashPart = file.slice(0, -'.narinfo'.length);
  if (!isHashPart(hashPart)) throw badRequest('malformed narinfo name: expected <32-character nix32 hash>.narinfo');
  const { store, signers } = c.get('deps');
  const info = store.lookup(hashPart);
  if (!info) throw notFound('no such path');
  return c.body(narInfoText(info, signers), 200, { 'Content-Type': 'text/x-nix-narinfo' });
}
