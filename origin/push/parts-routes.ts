/**
 * HTTP side of `eris push` (shared/push-protocol.ts): which paths a cache
 * lacks, NAR uploads in parts, and batches of small paths. Thin: parse, hand
 * on to parts.ts or the push service, answer JSON or one line of text. The
 * narinfo that ends an upload is the stock PUT (routes.ts), so it imports
 * exactly as `nix copy --to` does; a batch's entries go through the same steps.
 */
import type { Context } from 'hono';
import { parseStorePath } from '../../shared/store-path.ts';
import {
  decodeBatch, MAX_BATCH_BYTES, type BatchResponse, MAX_MISSING_BODY_BYTES, PART_OFFSET_PARAM, PART_SHA256_PARAM, parseMissingRequest, parsePartQuery, parseUploadStart, UPLOAD_ID_RE,
  type MissingResponse,
} from '../../shared/push-protocol.ts';
import type { OriginEnv } from '../server/types.ts';
import { send } from '../server/respond.ts';
import { PushError, rejected } from './errors.ts';
import { contentLength, pushBody, pushFailure, pushTarget } from './routes.ts';
import { readExactly } from './staging.ts';
import { readSmall } from './service.ts';
import { requestCache, requestToken, requestUser } from '../usage/request.ts';
import { CONTENT_TYPE, USER_HEADER } from '../../shared/contract.ts';

/** Where the push protocol is routed, under `/:cache` (never bare: `/v1/…` is global). */
export const PARTS_ROUTES = {
  missing: '/:cache/v1/push/missing',
  uploads: '/:cache/v1/push/uploads',
  upload: '/:cache/v1/push/uploads/:id',
  batch: '/:cache/v1/push/batch',
} as const;

const json = (c: Context<OriginEnv>, value: unknown) => send(c, 200, JSON.stringify(value), CONTENT_TYPE.json);

async function readJson(c: Context<OriginEnv>, max: number): Promise<unknown> {
  const body = await readSmall(pushBody(c), max, contentLength(c));
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
  const target = pushTarget(c);
  const state = await push.parts.begin(target.name, start);
  if (start.narinfo !== undefined && !state.complete) {
    // Not waited for: the daemon's start overlaps the first parts. Why not (when not) is for the log only.
    const deps = c.get('deps');
    push.service.startStream(target, { id: state.id, storePath: start.storePath, narHash: start.narHash, narSize: start.narSize }, start.narinfo, c.req.header(USER_HEADER))
      .then((why) => why && deps.log.info({ msg: 'push: import after the narinfo', storePath: start.storePath, reason: why }))
      .catch((e: Error) => deps.log.error({ msg: 'push: streamed import failed to start', storePath: start.storePath, reason: e.message }));
  }
  return json(c, state);
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
  const length = contentLength(c);
  const state = await push.parts.part(pushTarget(c).name, id, q.offset, q.sha256, pushBody(c), length);
  c.get('deps').usage?.received(requestUser(c), requestCache(c), length ?? 0);
  return json(c, state);
});


/**
 * POST: several small paths, each its narinfo and NAR (shared/push-protocol.ts's framing). The whole body is
 * read (at most MAX_BATCH_BYTES, exactly its Content-Length) and every entry checked before any is imported;
 * the answer, once the paths are valid, has one result per entry.
 */
export const postBatch = handle(async (c) => {
  const push = partsOf(c);
  const length = contentLength(c);
  if (length === undefined) throw rejected('a batch needs a Content-Length');
  if (length > MAX_BATCH_BYTES) throw new PushError(413, `batch of ${length} bytes is over the origin's limit of ${MAX_BATCH_BYTES} bytes per batch`);
  const body = await readExactly(pushBody(c), length, 'batch body');
  const entries = decodeBatch(body);
  if (typeof entries === 'string') throw rejected(entries);
  const deps = c.get('deps');
  const outcomes = await push.service.putBatch(pushTarget(c), entries.map((e) => ({ narinfo: e.narinfo, nar: e.nar as Buffer })), c.req.header(USER_HEADER));
  deps.usage?.received(requestUser(c), requestCache(c), length, requestToken(c));
  const results: BatchResponse['results'] = [];
  for (const o of outcomes) {
    if ('result' in o) {
      deps.usage?.pushed(requestUser(c), requestCache(c), requestToken(c), o.result.path);
      results.push({ storePath: o.storePath, status: 200, message: o.result.message });
    } else {
      deps.log[o.error.status >= 500 ? 'error' : 'info']({ msg: 'push refused', path: c.req.path, storePath: o.storePath, status: o.error.status, reason: o.error.message });
      results.push({ storePath: o.storePath, status: o.error.status, message: o.error.message });
    }
  }
  if (results.some((r) => r.status === 200)) deps.retention?.afterPush(requestCache(c));
  return json(c, { results } satisfies BatchResponse);
});
