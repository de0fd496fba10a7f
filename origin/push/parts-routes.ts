/**
 * HTTP side of `eris push` (shared/push-protocol.ts): which paths a cache
 * lacks, and NAR uploads in parts. Thin: parse, hand on to parts.ts, answer
 * JSON or one line of text. The narinfo that ends an upload is the stock PUT
 * (routes.ts), so it imports exactly as `nix copy --to` does.
 */
import type { Context } from 'hono';
import { parseStorePath } from '../../shared/store-path.ts';
import {
  MAX_MISSING_BODY_BYTES, PART_OFFSET_PARAM, PART_SHA256_PARAM, parseMissingRequest, parsePartQuery, parseUploadStart, UPLOAD_ID_RE,
  type MissingResponse,
} from '../../shared/push-protocol.ts';
import type { OriginEnv } from '../server/types.ts';
import { send } from '../server/respond.ts';
import { PushError, rejected } from './errors.ts';
import { pushBody, pushFailure, pushTarget } from './routes.ts';
import { readSmall } from './service.ts';
import { requestCache, requestUser } from '../usage/request.ts';
import { CONTENT_TYPE } from '../../shared/contract.ts';

/** Where the push protocol is routed, under `/:cache` (never bare: `/v1/…` is global). */
export const PARTS_ROUTES = {
  missing: '/:cache/v1/push/missing',
  uploads: '/:cache/v1/push/uploads',
  upload: '/:cache/v1/push/uploads/:id',
} as const;

const json = (c: Context<OriginEnv>, value: unknown) => send(c, 200, JSON.stringify(value), CONTENT_TYPE.json);

async function readJson(c: Context<OriginEnv>, max: number): Promise<unknown> {
  const length = c.req.header('content-length');
  const body = await readSmall(pushBody(c), max, length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw rejected('request body is not JSON');
  }
}

function partsOf(c: Context<OriginEnv>) {
  const push = c.get('deps').push;
  if (!push) throw new PushError(404, 'push is not enabled on this origin (set push_dir)');
  return push;
}

const handle = (fn: (c: Context<OriginEnv>) => Promise<Response>) => async (c: Context<OriginEnv>) => {
  try {
    return await fn(c);
  } catch (e) {
    return pushFailure(c, e);
  }
};

/** POST: the store paths of the body this cache does not serve, in the order given. */
export const postMissing = handle(async (c) => {
  partsOf(c);
  const req = parseMissingRequest(await readJson(c, MAX_MISSING_BODY_BYTES));
  if (typeof req === 'string') throw rejected(req);
  const target = pushTarget(c);
  const storeDir = c.get('deps').store.storeDir;
  const missing: string[] = [];
  for (const p of req.paths) {
    try {
      parseStorePath(p, storeDir);
    } catch {
      throw rejected(`${JSON.stringify(p.slice(0, 120))} is not a store path in ${storeDir}`);
    }
    if (!(await target.isPublished(p))) missing.push(p);
  }
  return json(c, { missing } satisfies MissingResponse);
});

/** POST: start (or find) the upload of one NAR. */
export const postUpload = handle(async (c) => {
  const push = partsOf(c);
  const start = parseUploadStart(await readJson(c, 64 * 1024));
  if (typeof start === 'string') throw rejected(start);
  try {
    parseStorePath(start.storePath, c.get('deps').store.storeDir);
  } catch {
    throw rejected(`storePath ${JSON.stringify(start.storePath.slice(0, 120))} is not a store path in ${c.get('deps').store.storeDir}`);
  }
  return json(c, await push.parts.begin(pushTarget(c).name, start));
});

function uploadId(c: Context<OriginEnv>): string {
  const id = c.req.param('id') ?? '';
  if (!UPLOAD_ID_RE.test(id)) throw rejected('malformed upload id');
  return id;
}

/** GET: how far an upload is (what a client asks after a cut). */
export const getUpload = handle(async (c) => json(c, await partsOf(c).parts.state(pushTarget(c).name, uploadId(c))));

/** PUT: one part, at the upload's offset, with its SHA-256. */
export const putPart = handle(async (c) => {
  const push = partsOf(c);
  const id = uploadId(c);
  const q = parsePartQuery(c.req.query(PART_OFFSET_PARAM), c.req.query(PART_SHA256_PARAM));
  if (typeof q === 'string') throw rejected(q);
  const lengthHeader = c.req.header('content-length');
  const length = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  const state = await push.parts.part(pushTarget(c).name, id, q.offset, q.sha256, pushBody(c), length);
  c.get('deps').usage?.received(requestUser(c), requestCache(c), length ?? 0);
  return json(c, state);
});

