/**
 * `POST /<cache>/v1/push/pins` (shared/pins.ts): `eris push --pin NAME` makes the path it pushed the newest
 * revision of pin NAME. The edge has checked the token's write grant on the cache. The path must be
 * published in this cache (the push put it there); anything wrong is a status and one line.
 */
import type { Context } from 'hono';
import type { OriginEnv } from '../server/types.ts';
import { send } from '../server/respond.ts';
import { parsePinRequest } from '../../shared/pins.ts';
import { parseStorePath } from '../../shared/store-path.ts';
import { PushError, rejected } from '../push/errors.ts';
import { pushBody, pushFailure } from '../push/routes.ts';
import { readSmall } from '../push/service.ts';
import { PinError } from './pins.ts';
import { CONTENT_TYPE } from '../../shared/contract.ts';

export const PIN_ROUTE = '/:cache/v1/push/pins';

export async function postPin(c: Context<OriginEnv>) {
  try {
    const deps = c.get('deps');
    if (!deps.pins) throw new PushError(404, 'push is not enabled on this origin (set push_dir)');
    const length = c.req.header('content-length');
    const body = await readSmall(pushBody(c), 64 * 1024, length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined);
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      throw rejected('request body is not JSON');
    }
    const req = parsePinRequest(value);
    if (typeof req === 'string') throw rejected(req);
    const cache = c.get('cache') ?? 'default';
    let hashPart: string;
    try {
      hashPart = parseStorePath(req.storePath, deps.store.storeDir).hashPart;
    } catch {
      throw rejected(`storePath ${JSON.stringify(req.storePath.slice(0, 120))} is not a store path in ${deps.store.storeDir}`);
    }
    // This cache's view of the store: published here, and that very path.
    if ((await deps.store.lookup(hashPart))?.storePath !== req.storePath) throw new PushError(409, `${req.storePath} is not in cache ${cache}: push it first`);
    try {
      return send(c, 200, JSON.stringify(deps.pins.pin(cache, req)), CONTENT_TYPE.json);
    } catch (e) {
      if (e instanceof PinError) throw rejected(e.message);
      throw e;
    }
  } catch (e) {
    return pushFailure(c, e);
  }
}
