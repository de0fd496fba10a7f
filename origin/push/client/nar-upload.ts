/**
 * Uploads one NAR so the origin holds it staged for its narinfo. A NAR that
 * fits one request goes as the stock `PUT nar/<narHash>.nar`; a larger one in
 * parts (shared/push-protocol.ts), streamed from `nix-store --dump` one
 * part at a time. After a failed part the client asks the origin where the
 * upload stands: a part it already holds is never sent again, a part it lacks
 * is sent again from memory, anything else (the upload was swept or refused)
 * starts over from the origin's answer to a new start.
 */
import { createHash } from 'node:crypto';
import { partsNarFile, pushUrls, type UploadState } from '../../../shared/push-protocol.ts';
import { dumpNar, ExactReader, type LocalPath, type NixSource } from './closure.ts';
import { isTemporary, PushRequestError, type EdgeClient } from './edge.ts';

export interface NarUploadContext {
  edge: EdgeClient;
  cache: string;
  source: NixSource;
  /** Largest request body: one part. */
  partSize: number;
  /** How long one part keeps being retried while the origin does not answer. */
  retryForMs: number;
  /** Bytes sent and acknowledged (progress). */
  onBytes?: (n: number) => void;
  onRetry?: (what: string, reason: string, waitMs: number) => void;
}

const oneLine = (text: string) => text.trim().split('\n')[0] ?? '';

/** Reads the whole NAR of a path that fits one request. */
async function readSmallNar(ctx: NarUploadContext, info: LocalPath): Promise<Buffer> {
  const dump = dumpNar(ctx.source, info.path);
  const buf = await new ExactReader(dump.stream).read(info.narSize + 1);
  await dump.done;
  if (buf.length !== info.narSize) throw new Error(`${info.path}: nix-store --dump gave ${buf.length} bytes, the store says NarSize ${info.narSize}`);
  return buf;
}

export async function uploadNar(ctx: NarUploadContext, info: LocalPath): Promise<void> {
  if (info.narSize <= ctx.partSize) {
    const nar = await readSmallNar(ctx, info);
    const res = await ctx.edge.request('PUT', `/${ctx.cache}/nar/${partsNarFile(info.narHash)}`, nar, 'application/x-nix-nar');
    if (res.status < 200 || res.status > 299) throw new PushRequestError(`${info.path}: NAR upload refused: ${res.status} ${oneLine(res.text)}`, res.status);
    ctx.onBytes?.(nar.length);
    return;
  }
  for (let round = 1; ; round++) {
    const finished = await uploadInParts(ctx, info);
    if (finished) return;
    if (round >= 5) throw new Error(`${info.path}: the origin lost the upload ${round} times; giving up`);
  }
}

/** One pass over the NAR; false when the upload vanished and must start again. */
async function uploadInParts(ctx: NarUploadContext, info: LocalPath): Promise<boolean> {
  const { edge, cache } = ctx;
  let { value: state } = await edge.json<UploadState>('POST', pushUrls.uploads(cache), { storePath: info.path, narHash: info.narHash, narSize: info.narSize });
  if (state.complete) return true;
  const dump = dumpNar(ctx.source, info.path);
  try {
    const reader = new ExactReader(dump.stream);
    let pos = await reader.skip(state.offset);
    if (pos !== state.offset) throw new Error(`${info.path}: the NAR is shorter than the origin's offset ${state.offset}`);
    while (pos < info.narSize) {
      const part = await reader.read(Math.min(ctx.partSize, info.narSize - pos));
      if (part.length === 0) throw new Error(`${info.path}: nix-store --dump ended at ${pos} of ${info.narSize} bytes`);
      const sha = createHash('sha256').update(part).digest('hex');
      const after = await sendPart(ctx, info, state.id, pos, part, sha);
      if (after === undefined) return false;
      state = after;
      pos += part.length;
      ctx.onBytes?.(part.length);
      if (state.complete) break;
      if (state.offset !== pos) throw new Error(`${info.path}: the origin acknowledged offset ${state.offset}, expected ${pos}`);
    }
    if (!state.complete) throw new Error(`${info.path}: all ${info.narSize} bytes sent but the origin does not call the upload complete`);
    return true;
  } finally {
    dump.kill();
  }
}

/**
 * Sends one part until the origin holds it. Resolves to the state after it, or undefined when the upload
 * is gone (start again). A refusal of the bytes themselves (400, 413) is an error. After a failed attempt
 * (no answer, 5xx, out of order) the origin is asked where the upload stands before anything is sent again.
 */
async function sendPart(ctx: NarUploadContext, info: LocalPath, id: string, offset: number, part: Buffer, sha: string): Promise<UploadState | undefined> {
  const { edge, cache } = ctx;
  const deadline = Date.now() + ctx.retryForMs;
  let wait = 250;
  for (let conflicts = 0; ;) {
    const res = await edge.once('PUT', pushUrls.part(cache, id, offset, sha), part, 'application/octet-stream');
    if (res.status === 200) return JSON.parse(res.text) as UploadState;
    if (res.status === 404) return undefined;
    if (isTemporary(res)) {
      const reason = res.status ? `${res.status} ${oneLine(res.text)}` : res.text;
      if (Date.now() + wait > deadline) throw new PushRequestError(`${info.path}: part at ${offset}: ${reason} (gave up)`);
      ctx.onRetry?.(`part at ${offset} of ${info.path}`, reason, wait);
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 5000);
    } else if (res.status !== 409 || ++conflicts > 5) {
      throw new PushRequestError(`${info.path}: part at ${offset} refused: ${res.status} ${oneLine(res.text)}`, res.status);
    }
    // Where does the origin stand? (`request` waits out an origin that is still restarting.)
    const now = await edge.request('GET', pushUrls.upload(cache, id));
    if (now.status === 404) return undefined;
    if (now.status !== 200) throw new PushRequestError(`${info.path}: upload state: ${now.status} ${oneLine(now.text)}`, now.status);
    const state = JSON.parse(now.text) as UploadState;
    if (state.complete || state.offset === offset + part.length) return state;
    if (state.offset !== offset) return undefined;
  }
}
