/**
 * Uploads one NAR so the origin holds it staged for its narinfo. A NAR that
 * fits one request goes as the stock `PUT nar/<narHash>.nar`; a larger one in
 * parts (shared/push-protocol.ts), read in order (openNar: from the store's
 * files, else Nix's dump) and sent several at once (bounded). After a failed part the client asks the
 * origin where the upload stands: a part it already holds is never sent
 * again, a part it lacks is sent again from memory, anything else (the upload
 * was swept or refused) starts over from the origin's answer to a new start,
 * which names the parts it holds.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { formatSha256Nix32 } from '../../../shared/hash.ts';
import { checkedNar, narBuffer } from '../../store/nar-stream.ts';
import { recycleChunk } from '../../store/buffer-pool.ts';
import { missingParts, partsNarFile, pushUrls, WHOLE_NAR_REFUSED, type UploadStart, type UploadState } from '../../../shared/push-protocol.ts';
import { dumpNar, ExactReader, type LocalPath, type NixSource } from './closure.ts';
import { isTemporary, PushRequestError, type EdgeClient } from './edge.ts';
import { localStoreRoot } from './local-path.ts';

export interface NarUploadContext {
  edge: EdgeClient;
  cache: string;
  source: NixSource;
  /** Largest request body: one part. */
  partSize: number;
  /** How long one part keeps being retried while the origin does not answer. */
  retryForMs: number;
  /** Parts in flight across the push (partSlots); one at a time without it. */
  slot?: () => Promise<() => void>;
  /** Part buffers reused across the push (partBuffers); a pool of this NAR's own without it. */
  buffers?: PartBuffers;
  /** The narinfo that ends a path's upload, given with the upload's start: the origin imports while the parts arrive. */
  narinfoOf?: (info: LocalPath) => string;
  /** Bytes sent and acknowledged (progress). */
  onBytes?: (n: number) => void;
  onRetry?: (what: string, reason: string, waitMs: number) => void;
}

const oneLine = (text: string) => text.trim().split('\n')[0] ?? '';

/**
 * Where the files of a path are when the store is this machine's file system (Nix's default store, or a
 * chroot store root given with --store); undefined for any other store.
 */
function localFiles(source: NixSource, path: string): string | undefined {
  const root = localStoreRoot(source);
  return root === undefined ? undefined : join(root, path);
}

/** The NAR serialised here from the path's files, when that gives exactly the NAR the store registered; else undefined. */
async function narOfFiles(source: NixSource, info: LocalPath): Promise<Buffer | undefined> {
  const files = localFiles(source, info.path);
  if (files === undefined) return undefined;
  try {
    const nar = await narBuffer(files, info.narSize);
    return formatSha256Nix32(createHash('sha256').update(nar).digest()) === info.narHash ? nar : undefined;
  } catch {
    return undefined; // not readable here (another user's store, a remote store behind NIX_REMOTE): Nix dumps it
  }
}

/**
 * A large NAR as chunks, for parts: serialised here from the store's files when they are readable (1 MiB
 * chunks, no process), else from Nix's dump (dumpNar) — in Node a pipe delivers 64 KiB a read, which made the
 * dump the push's slowest step (a 32 MiB NAR: 0.28 s through the pipe, 0.013-0.1 s from the files). Bytes
 * serialised here are counted: `check()`, once all are read, throws unless there are NarSize of them. Their
 * hash is not computed here: each part's own hash is (it goes with the part), and the origin hashes the whole
 * NAR before it lets the last part complete the upload — a NAR that is not the one Nix registered is refused
 * there and its upload removed (uploadInParts says so in the store's terms), so the client no longer hashes
 * every byte twice (a 256 MiB push: about 0.2 s of CPU less). Nix's dump is trusted as is.
 */
export function openNar(source: NixSource, info: LocalPath): { chunks: AsyncIterable<Buffer>; what: string; check: () => void; stop: () => Promise<void> } {
  const files = localFiles(source, info.path);
  if (files !== undefined && existsSync(files)) {
    let size = 0;
    const chunks = (async function* () {
      for await (const chunk of checkedNar(files, info.narSize)) {
        size += chunk.length;
        yield chunk;
        // Asked for the next one: the reader copied all of this one (ExactReader reads on only when it has).
        recycleChunk(chunk);
      }
    })();
    return {
      chunks,
      what: `the NAR of ${files}`,
      check: () => {
        if (size !== info.narSize) throw new Error(`${info.path}: the NAR read from its files is ${size} bytes, not the store's NarSize ${info.narSize}`);
      },
      stop: async () => {
        await chunks.return(undefined);
      },
    };
  }
  const dump = dumpNar(source, info.path);
  return { chunks: dump.stream, what: 'the NAR Nix dumped', check: () => {}, stop: async () => dump.kill() };
}

/**
 * Reads the whole NAR of a path that fits one request: serialised in this process from the store's files
 * (the same NAR writer the origin serves with; no process per path, which made pushing a closure of small
 * paths slower than nix copy), checked against the NarHash Nix registered; else from Nix's dump (dumpNar).
 */
export async function readSmallNar(ctx: Pick<NarUploadContext, 'source'>, info: LocalPath): Promise<Buffer> {
  const here = await narOfFiles(ctx.source, info);
  if (here) return here;
  const dump = dumpNar(ctx.source, info.path);
  const buf = await new ExactReader(dump.stream).read(info.narSize + 1);
  await dump.done;
  if (buf.length !== info.narSize) throw new Error(`${info.path}: Nix's dump gave ${buf.length} bytes, the store says NarSize ${info.narSize}`);
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

/**
 * At most `n` parts in memory and on the wire at once, across every NAR of a push (so memory stays about
 * jobs × part size however many NARs are under way); a NAR's upload takes a slot before it reads a part.
 */
export function partSlots(n: number): () => Promise<() => void> {
  let free = Math.max(1, n);
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else free++;
  };
  return async () => {
    if (free > 0) free--;
    else await new Promise<void>((r) => waiting.push(r));
    return release;
  };
}

export interface PartBuffers {
  /** A buffer of at least `size` bytes, its contents garbage. */
  take(size: number): Buffer;
  /** Back for the next part, once its request is done with it. */
  give(b: Buffer): void;
}

/**
 * Part buffers, reused: the first touch of a fresh buffer's pages costs more than the copy into it (16 fresh
 * 16 MiB buffers filled: 0.15-0.39 s on the shared test machine, reused: 0.01-0.05 s). At most one per part
 * in flight (partSlots), so memory stays about jobs × part size.
 */
export function partBuffers(): PartBuffers {
  const free: Buffer[] = [];
  return {
    take(size) {
      const i = free.findIndex((b) => b.length >= size);
      return i >= 0 ? free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(size);
    },
    give(b) {
      free.push(b);
    },
  };
}

/**
 * One pass over the NAR: the parts the origin does not hold, read in order (openNar), sent
 * several at once (as many as the slots allow); false when the upload vanished and must start again.
 */
async function uploadInParts(ctx: NarUploadContext, info: LocalPath): Promise<boolean> {
  const { edge, cache } = ctx;
  const start: UploadStart = { storePath: info.path, narHash: info.narHash, narSize: info.narSize, narinfo: ctx.narinfoOf?.(info) };
  const { value: state } = await edge.json<UploadState>('POST', pushUrls.uploads(cache), start);
  if (state.complete) return true;
  const slot = ctx.slot ?? partSlots(1);
  const buffers = ctx.buffers ?? partBuffers();
  const sending = new Set<Promise<void>>();
  let gone = false;
  let completed = false;
  let failure: unknown;
  const nar = openNar(ctx.source, info);
  try {
    const reader = new ExactReader(nar.chunks);
    let pos = 0;
    for (const [offset, size] of missingParts(state, ctx.partSize)) {
      const release = await slot();
      if (gone || failure !== undefined) {
        release();
        break;
      }
      let part: Buffer;
      const buffer = buffers.take(size);
      const done = () => {
        buffers.give(buffer);
        release();
      };
      try {
        if ((await reader.skip(offset - pos)) !== offset - pos) throw new Error(`${info.path}: the NAR is shorter than the origin's offset ${offset}`);
        part = await reader.read(size, buffer);
        if (part.length !== size) throw new Error(`${info.path}: ${nar.what} ended at ${offset + part.length} of ${info.narSize} bytes`);
        // The whole NAR read: it must be the one Nix registered before its last part goes (never a wrong NAR completed).
        if (offset + size === info.narSize) nar.check();
      } catch (e) {
        done();
        throw e;
      }
      pos = offset + size;
      const sha = createHash('sha256').update(part).digest('hex');
      const sent: Promise<void> = sendPart(ctx, info, state.id, offset, part, sha).then((after) => {
        if (after === undefined) gone = true;
        else {
          ctx.onBytes?.(size);
          if (after.complete) completed = true;
        }
      }, (e: unknown) => {
        failure ??= e;
      }).finally(() => {
        done();
        sending.delete(sent);
      });
      sending.add(sent);
    }
    await Promise.all(sending);
    if (failure instanceof PushRequestError && failure.status === 400 && failure.message.includes(WHOLE_NAR_REFUSED)) {
      // The whole NAR refused by its hash: what was read here is not the NAR Nix registered (a changed store file).
      throw new PushRequestError(`${info.path}: ${nar.what} is not the NAR the store registered (NarHash ${info.narHash}): the origin refused it and removed the upload; \`nix-store --verify-path ${info.path}\` checks the store (${failure.message.slice(info.path.length + 2)})`, 400);
    }
    if (failure !== undefined) throw failure;
    if (gone) return false;
    if (completed) return true;
    // Every part acknowledged, none of them the one that completed it (the completing answer was lost): ask.
    const now = await edge.request('GET', pushUrls.upload(cache, state.id));
    if (now.status === 404) return false;
    if (now.status === 200 && (JSON.parse(now.text) as UploadState).complete) return true;
    throw new Error(`${info.path}: all ${info.narSize} bytes sent but the origin does not call the upload complete`);
  } finally {
    await Promise.allSettled(sending);
    await nar.stop();
  }
}

/**
 * Sends one part until the origin holds it. Resolves to the state after it, or undefined when the upload
 * is gone (start again). A refusal of the bytes themselves (400, 413) is an error. After a failed attempt
 * (no answer, 5xx, a conflict) the origin is asked where the upload stands before anything is sent again:
 * a part it holds is never sent twice.
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
    if (state.complete || holds(state, offset, part.length)) return state;
  }
}

/** The origin holds the part [offset, offset + size) (origins before out-of-order parts say only the offset). */
const holds = (state: UploadState, offset: number, size: number) =>
  state.received ? state.received.some(([at, n]) => at <= offset && offset + size <= at + n) : state.offset >= offset + size;
