/**
 * The wire of `eris push` (client, edge and origin import this one module).
 * Everything lives under a named cache, `/<cache>/v1/push/…` (never the bare
 * paths: `/v1/…` is global, and the edge checks the token's grant on the cache
 * the first segment names).
 *
 *   POST /<cache>/v1/push/missing          read (or write) grant
 *        {"paths": ["/nix/store/…", …]}  →  {"missing": [the ones the cache does not serve]}
 *        One request for a whole closure (at most MAX_MISSING_PATHS a request). The edge adds
 *        MAX_UPLOAD_HEADER to the answer: the largest part (or batch) it lets through.
 *   POST /<cache>/v1/push/uploads          write grant
 *        {"storePath", "narHash": "sha256:<nix32>", "narSize"}  →  UploadState
 *        Starts the upload of one NAR, or finds the one already under way for the same NAR
 *        (what a client does after a cut: it resumes at `offset`).
 *   GET  /<cache>/v1/push/uploads/<id>      write grant  →  UploadState
 *   PUT  /<cache>/v1/push/uploads/<id>?offset=N&sha256=<hex>   write grant, exact Content-Length
 *        One part: the NAR's bytes [N, N + Content-Length). Parts may come in any order and several
 *        at once; a part overlapping one already held is refused (409, nothing kept), the very same
 *        part again is answered as held. The part's SHA-256 is checked on arrival (mismatch: 400 and
 *        the whole upload is removed); an accepted part is written, recorded, then acknowledged
 *        (200 + UploadState) and never needed again. The part that makes the held parts cover the
 *        NAR completes the upload: the whole NAR is checked against narHash/narSize and becomes the
 *        staged file `nar/<narHash nix32>.nar` (uncompressed).
 *   PUT  /<cache>/<hash>.narinfo            the stock upload (as `nix copy` sends it), last:
 *        `URL: nar/<narHash nix32>.nar`, `Compression: none`; it imports through the same path.
 *   POST /<cache>/v1/push/batch            write grant, exact Content-Length (≤ the edge's limit and MAX_BATCH_BYTES)
 *        Several small paths in one request, each its narinfo (as above) and its whole NAR, references first
 *        (framing: encodeBatch). The origin checks every entry before it imports any: a bad one refuses the
 *        whole batch (4xx, one line, nothing imported); then it imports them (references before referrers)
 *        and answers once they are valid: 200 + BatchResponse, one result per entry. An origin without
 *        this route answers 404: the client falls back to the NAR + narinfo PUTs per path.
 *
 * Every error is a status and one line of text.
 */
import { formatSha256Nix32, parseSha256 } from './hash.ts';
import { isCacheName } from './caches.ts';

export const PUSH_PREFIX = '/v1/push';
export const MISSING_PATH = `${PUSH_PREFIX}/missing`;
export const UPLOADS_PATH = `${PUSH_PREFIX}/uploads`;
export const BATCH_PATH = `${PUSH_PREFIX}/batch`;

/** Response header of the missing answer (set by the edge): the largest request body it forwards (a part, a batch). */
export const MAX_UPLOAD_HEADER = 'x-eris-max-upload-bytes';

/** Query parameters of a part. */
export const PART_OFFSET_PARAM = 'offset';
export const PART_SHA256_PARAM = 'sha256';

/** Most paths one missing request may name (a NixOS closure is 3-5 thousand). */
export const MAX_MISSING_PATHS = 20_000;
/** Largest missing request body (20 000 store paths of 200 characters, with JSON quoting). */
export const MAX_MISSING_BODY_BYTES = 5 * 1024 * 1024;

/** Upload ids: 32 lower-case hex characters. */
export const UPLOAD_ID_RE = /^[0-9a-f]{32}$/;

export interface MissingRequest {
  paths: string[];
}
export interface MissingResponse {
  missing: string[];
}

export interface UploadStart {
  storePath: string;
  /** `sha256:<nix32>`. */
  narHash: string;
  narSize: number;
  /**
   * The narinfo that will end the upload (optional): given now, the origin may import the NAR while its parts
   * arrive; the path still becomes valid only once that narinfo is PUT. Origins before it ignore it.
   */
  narinfo?: string;
}

export interface UploadState {
  id: string;
  /** The bytes held from 0 on without a gap end here (a client sending in order continues here). */
  offset: number;
  narSize: number;
  /** The whole NAR arrived and was checked: send the narinfo. */
  complete: boolean;
  /** Every part held, as [offset, size], by offset (absent from origins before parts could come out of order). */
  received?: [number, number][];
}

/**
 * The byte ranges of a NAR still to send, given what the origin holds, cut into parts of at most `partSize`:
 * what a client resuming an upload sends (and only that).
 */
export function missingParts(state: Pick<UploadState, 'offset' | 'narSize' | 'received'>, partSize: number): [number, number][] {
  const held = state.received ?? [[0, state.offset]];
  const out: [number, number][] = [];
  let pos = 0;
  const gap = (to: number) => {
    for (; pos < to; pos = Math.min(to, pos + partSize)) out.push([pos, Math.min(to, pos + partSize) - pos]);
  };
  for (const [offset, size] of [...held].sort((a, b) => a[0] - b[0])) {
    gap(offset);
    pos = Math.max(pos, offset + size);
  }
  gap(state.narSize);
  return out;
}

/**
 * How the origin's 400 to the part that completes an upload begins when the whole NAR is not of the declared
 * NarHash (every part was of its own hash). The client tells it by this from a part refused for its own bytes
 * (changed on the way), which says "part at offset … hashes to …".
 */
export const WHOLE_NAR_REFUSED = 'the uploaded NAR hashes to';

/** The narinfo `URL:` (and staged file) of a NAR uploaded in parts: uncompressed, named by its NAR hash. */
export function partsNarFile(narHash: string): string {
  return `${formatSha256Nix32(parseSha256(narHash)).slice('sha256:'.length)}.nar`;
}

/** Client URLs, relative to the edge: `/<cache>/v1/push/…`. */
export const pushUrls = {
  missing: (cache: string) => `/${cache}${MISSING_PATH}`,
  uploads: (cache: string) => `/${cache}${UPLOADS_PATH}`,
  upload: (cache: string, id: string) => `/${cache}${UPLOADS_PATH}/${id}`,
  part: (cache: string, id: string, offset: number, sha256Hex: string) =>
    `/${cache}${UPLOADS_PATH}/${id}?${PART_OFFSET_PARAM}=${offset}&${PART_SHA256_PARAM}=${sha256Hex}`,
  narinfo: (cache: string, hashPart: string) => `/${cache}/${hashPart}.narinfo`,
  batch: (cache: string) => `/${cache}${BATCH_PATH}`,
};

/** `rest` (a path within a cache, from cacheOfPath) is a push-protocol path. */
export const isPushProtocolPath = (rest: string): boolean =>
  rest === MISSING_PATH || rest === UPLOADS_PATH || rest === BATCH_PATH || rest.startsWith(`${UPLOADS_PATH}/`);

/**
 * The scope a request needs at the edge: asking what is missing only reveals what a reader may learn
 * (HEAD of each narinfo), so a read grant does; everything else that is not a GET/HEAD needs write.
 */
export function scopeFor(method: string, rest: string): 'read' | 'write' {
  if (method === 'GET' || method === 'HEAD') return rest.startsWith(`${UPLOADS_PATH}/`) ? 'write' : 'read';
  return method === 'POST' && rest === MISSING_PATH ? 'read' : 'write';
}

/** Parses a missing request body; a string says what is wrong. */
export function parseMissingRequest(value: unknown): MissingRequest | string {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as MissingRequest).paths)) return 'expected {"paths": [store paths]}';
  const paths = (value as MissingRequest).paths;
  if (paths.length > MAX_MISSING_PATHS) return `at most ${MAX_MISSING_PATHS} paths per request`;
  if (!paths.every((p) => typeof p === 'string')) return 'paths: expected strings';
  return { paths };
}

/** Parses an upload start; a string says what is wrong. */
export function parseUploadStart(value: unknown): UploadStart | string {
  if (typeof value !== 'object' || value === null) return 'expected {"storePath", "narHash", "narSize"}';
  const v = value as Record<string, unknown>;
  if (typeof v.storePath !== 'string') return 'storePath: expected a store path';
  if (typeof v.narHash !== 'string') return 'narHash: expected sha256:<hash>';
  let narHash: string;
  try {
    narHash = formatSha256Nix32(parseSha256(v.narHash));
  } catch {
    return 'narHash: expected sha256:<hash>';
  }
  if (typeof v.narSize !== 'number' || !Number.isSafeInteger(v.narSize) || v.narSize < 8) return 'narSize: expected the NAR size in bytes';
  if (v.narinfo !== undefined && (typeof v.narinfo !== 'string' || v.narinfo.length > MAX_BATCH_NARINFO_BYTES)) return `narinfo: expected the narinfo's text (at most ${MAX_BATCH_NARINFO_BYTES} bytes)`;
  return { storePath: v.storePath, narHash, narSize: v.narSize, ...(v.narinfo === undefined ? {} : { narinfo: v.narinfo }) };
}

/** The offset and SHA-256 (hex) of a part from its query; a string says what is wrong. */
export function parsePartQuery(offset: string | undefined, sha256: string | undefined): { offset: number; sha256: string } | string {
  if (offset === undefined || !/^\d{1,16}$/.test(offset) || !Number.isSafeInteger(Number(offset))) return `part needs ?${PART_OFFSET_PARAM}=<byte offset>`;
  if (sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) return `part needs &${PART_SHA256_PARAM}=<SHA-256 of the part, 64 hex digits>`;
  return { offset: Number(offset), sha256 };
}

/** A cache name the client may put in front of the push paths. */
export const isPushCache = isCacheName;

/*
 * Batches (POST /<cache>/v1/push/batch): several small paths in one request, so a closure of many small
 * paths costs a few requests instead of two a path. The body, exactly Content-Length bytes:
 *
 *   "eris-batch-1\n"                                  (BATCH_MAGIC)
 *   then per entry, until the body ends:
 *     u32 little-endian  narinfo length N (1 .. MAX_BATCH_NARINFO_BYTES)
 *     u32 little-endian  NAR length M (8 .. MAX_BATCH_NAR_BYTES): the NAR's NarSize
 *     N bytes            the narinfo, UTF-8 (URL nar/<narHash nix32>.nar, Compression none, as a NAR PUT in parts ends)
 *     M bytes            the NAR, uncompressed
 *
 * At most MAX_BATCH_PATHS entries; every entry's references are in the cache already or earlier in the same
 * batch. A path larger than MAX_BATCH_NAR_BYTES goes as a NAR upload (in parts) and its narinfo PUT.
 */
export const BATCH_MAGIC = 'eris-batch-1\n';
/** Largest batch body the origin takes (it holds a batch in memory while it checks it). */
export const MAX_BATCH_BYTES = 32 * 1024 * 1024;
/** Most entries in one batch. */
export const MAX_BATCH_PATHS = 1000;
/** Largest NAR in a batch (larger paths go in parts). */
export const MAX_BATCH_NAR_BYTES = 1024 * 1024;
/** Largest narinfo in a batch entry. */
export const MAX_BATCH_NARINFO_BYTES = 64 * 1024;
const ENTRY_HEADER_BYTES = 8;

export interface BatchEntry {
  narinfo: string;
  nar: Uint8Array;
}

export interface BatchResult {
  storePath: string;
  /** 200: in the cache (imported, published, or there already); else what a single narinfo PUT would have answered. */
  status: number;
  /** One line: what happened, or why not. */
  message: string;
}
export interface BatchResponse {
  results: BatchResult[];
}

const utf8 = new TextEncoder();

/** The bytes an entry adds to a batch body (the client's budget against the limit). */
export const batchEntryBytes = (narinfoBytes: number, narBytes: number) => ENTRY_HEADER_BYTES + narinfoBytes + narBytes;
/** The bytes of a batch body before its first entry. */
export const BATCH_HEADER_BYTES = BATCH_MAGIC.length;

/** A batch body (its length is the request's Content-Length). */
export function encodeBatch(entries: readonly BatchEntry[]): Uint8Array {
  const infos = entries.map((e) => utf8.encode(e.narinfo));
  const total = infos.reduce((a, info, i) => a + batchEntryBytes(info.length, entries[i]!.nar.length), BATCH_HEADER_BYTES);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(utf8.encode(BATCH_MAGIC), 0);
  let at = BATCH_HEADER_BYTES;
  entries.forEach((e, i) => {
    const info = infos[i]!;
    view.setUint32(at, info.length, true);
    view.setUint32(at + 4, e.nar.length, true);
    out.set(info, at + ENTRY_HEADER_BYTES);
    out.set(e.nar, at + ENTRY_HEADER_BYTES + info.length);
    at += batchEntryBytes(info.length, e.nar.length);
  });
  return out;
}

/** Splits a batch body into its entries (the NARs are views into `body`); a string says what is wrong with the framing. */
export function decodeBatch(body: Uint8Array): BatchEntry[] | string {
  const magic = utf8.encode(BATCH_MAGIC);
  if (body.length < magic.length || magic.some((b, i) => body[i] !== b)) return `batch body does not start with ${JSON.stringify(BATCH_MAGIC)}`;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const entries: BatchEntry[] = [];
  let at = magic.length;
  while (at < body.length) {
    const n = entries.length + 1;
    if (entries.length >= MAX_BATCH_PATHS) return `batch has more than ${MAX_BATCH_PATHS} entries`;
    if (body.length - at < ENTRY_HEADER_BYTES) return `batch body ends inside the header of entry ${n}`;
    const infoLength = view.getUint32(at, true);
    const narLength = view.getUint32(at + 4, true);
    if (infoLength < 1 || infoLength > MAX_BATCH_NARINFO_BYTES) return `entry ${n}: narinfo length ${infoLength} is not within 1..${MAX_BATCH_NARINFO_BYTES}`;
    if (narLength < 8 || narLength > MAX_BATCH_NAR_BYTES) return `entry ${n}: NAR length ${narLength} is not within 8..${MAX_BATCH_NAR_BYTES} (larger paths go in parts)`;
    const start = at + ENTRY_HEADER_BYTES;
    const end = start + infoLength + narLength;
    if (end > body.length) return `batch body ends inside entry ${n} (${body.length - start} of its ${infoLength + narLength} bytes)`;
    let narinfo: string;
    try {
      narinfo = text.decode(body.subarray(start, start + infoLength));
    } catch {
      return `entry ${n}: narinfo is not UTF-8`;
    }
    entries.push({ narinfo, nar: body.subarray(start + infoLength, end) });
    at = end;
  }
  if (!entries.length) return 'batch has no entries';
  return entries;
}
