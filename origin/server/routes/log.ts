/** `/log/<drv>`: the build log of a derivation from the store's log directory, decompressed. */
import type { Context } from 'hono';
import { Readable } from 'node:stream';
import type { OriginEnv } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { isStorePathBaseName } from '../../../shared/store-path.ts';
import { NO_STORE, TEXT } from '../respond.ts';

export function getBuildLog(c: Context<OriginEnv>) {
  const drv = c.req.param('drv') ?? '';
  if (!drv.endsWith('.drv') || !isStorePathBaseName(drv)) throw badRequest('malformed derivation name: expected <hash>-<name>.drv');
  const log = c.get('deps').store.buildLog(drv);
  if (!log) throw notFound('no build log for that derivation');
  const headers = { 'Content-Type': TEXT, 'Cache-Control': NO_STORE };
  c.get('deps').metrics.request(c.req.routePath, 200);
  if (c.req.method === 'HEAD') return c.body(null, 200, headers);
  return new Response(Readable.toWeb(log.open()) as ReadableStream, { status: 200, headers });
}
