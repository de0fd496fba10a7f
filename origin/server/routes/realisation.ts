/** `realisations/<sha256:hex>!<output>.doi`: where a content-addressed derivation output landed, signed. */
import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { cacheOfPath } from '../../../shared/caches.ts';
import { pathAsNixMeantIt } from '../../../shared/nix-url.ts';
import { badRequest, notFound } from '../errors.ts';
import { send } from '../respond.ts';
import { parseRealisationId, realisationFingerprint, renderRealisation } from '../../../shared/realisation.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

export async function getRealisation(c: Context<OriginEnv>) {
  // As Nix sent it: an output name may hold a `?` (shared/nix-url.ts).
  const file = cacheOfPath(pathAsNixMeantIt(c.req.url)).rest.slice('/realisations/'.length);
  const id = file.endsWith('.doi') ? file.slice(0, -4) : '';
  if (!parseRealisationId(id)) throw badRequest('malformed realisation: expected realisations/sha256:<64 hex>!<output>.doi');
  const { store, signatures } = c.get('deps');
  const r = await store.realisation(id);
  if (!r) throw notFound('no such realisation');
  return send(c, 200, renderRealisation({ ...r, signatures: signatures.withOurs(r.signatures, realisationFingerprint(r)) }), CONTENT_TYPE.json);
}
