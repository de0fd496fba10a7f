/**
 * `/log/<hash>-<name>.drv`, or `/log/<hash>` as harmonia serves it: the build log of a derivation from the
 * store's log directory, decompressed. The name is read as Nix sent it (shared/nix-url.ts): a `?` in it
 * starts what a URL parser calls the query.
 */
import type { Context } from 'hono';
import { Readable } from 'node:stream';
import type { OriginEnv } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import { cacheOfPath } from '../../../shared/caches.ts';
import { pathAsNixMeantIt } from '../../../shared/nix-url.ts';
import { buildLogNameProblem } from '../../store/build-log.ts';
import { NO_STORE, TEXT } from '../respond.ts';

export function getBuildLog(c: Context<OriginEnv>) {
  const drv = cacheOfPath(pathAsNixMeantIt(c.req.url)).rest.slice('/log/'.length);
  const problem = buildLogNameProblem(drv);
  if (problem) throw badRequest(problem);
  const log = c.get('deps').store.buildLog(drv);
  if (!log) throw notFound('no build log for that derivation');
  const headers = { 'Content-Type': TEXT, 'Cache-Control': NO_STORE };
  c.get('deps').metrics.request(c.req.routePath, 200);
  if (c.req.method === 'HEAD') return c.body(null, 200, headers);
  return new Response(Readable.toWeb(log.open()) as ReadableStream, { status: 200, headers });
}
