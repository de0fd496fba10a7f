/**
 * Batches of small paths (shared/push-protocol.ts, POST /<cache>/v1/push/batch): the closure, references
 * first, cut into runs of small paths that fit one request each (the edge's limit, MAX_BATCH_BYTES, a path
 * count), and the larger paths on their own (a NAR upload, in parts when needed, then the narinfo PUT).
 * A batch goes once the paths it refers to outside itself are in; several go at once.
 */
import {
  BATCH_HEADER_BYTES, batchEntryBytes, encodeBatch, MAX_BATCH_BYTES, MAX_BATCH_NAR_BYTES, MAX_BATCH_PATHS, pushUrls, type BatchResponse,
} from '../../../shared/push-protocol.ts';
import type { LocalPath } from './closure.ts';
import { answerHeaders, isTemporary, PushRequestError, type EdgeClient } from './edge.ts';

/** Default paths per batch: a 101-path closure is one request, a 1001-path one goes as several at once. */
export const DEFAULT_BATCH_PATHS = 250;

/** What is pushed together: a batch of small paths, or one path on its own (a NAR upload and its narinfo). */
export type PushUnit = { kind: 'batch'; paths: LocalPath[] } | { kind: 'single'; path: LocalPath };

/**
 * Cuts `todo` (references first) into units, in order: consecutive small paths into batches of at most
 * `maxPaths` paths and `maxBytes` of body, every other path alone. A unit refers only to paths of units
 * before it or to itself, so each waits only for earlier ones. `narinfoBytes` is the entry's narinfo size.
 */
export function planUnits(todo: readonly LocalPath[], o: { maxBytes: number; maxPaths: number; narinfoBytes: (p: LocalPath) => number }): PushUnit[] {
  const units: PushUnit[] = [];
  const maxBytes = Math.min(o.maxBytes, MAX_BATCH_BYTES);
  const maxPaths = Math.min(o.maxPaths, MAX_BATCH_PATHS);
  let open: { paths: LocalPath[]; bytes: number } | undefined;
  for (const p of todo) {
    const bytes = batchEntryBytes(o.narinfoBytes(p), p.narSize);
    if (maxPaths < 1 || p.narSize > MAX_BATCH_NAR_BYTES || BATCH_HEADER_BYTES + bytes > maxBytes) {
      open = undefined;
      units.push({ kind: 'single', path: p });
      continue;
    }
    if (!open || open.paths.length >= maxPaths || open.bytes + bytes > maxBytes) {
      open = { paths: [], bytes: BATCH_HEADER_BYTES };
      units.push({ kind: 'batch', paths: open.paths });
    }
    open.paths.push(p);
    open.bytes += bytes;
  }
  return units;
}

/** A batch's answer: each path's error (undefined: in the cache), or `unsupported` when the origin has no batch route. */
export type BatchAnswer = { unsupported: true } | { unsupported: false; results: Map<string, string | undefined> };

/**
 * Sends one batch (each entry's narinfo and NAR) until it is answered. A 404 means an origin before batches:
 * the caller pushes the paths one by one instead. A path the origin could not import for a temporary reason
 * (503) sends the batch again (what is in already answers as such), until `retryForMs` passed.
 */
export async function sendBatch(edge: EdgeClient, cache: string, entries: { path: LocalPath; narinfo: string; nar: Buffer }[],
  o: { retryForMs: number; onRetry?: (what: string, reason: string, ms: number) => void }): Promise<BatchAnswer> {
  const encoded = encodeBatch(entries);
  const body = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const deadline = Date.now() + o.retryForMs;
  for (let wait = 1000; ; wait = Math.min(2 * wait, 10_000)) {
    const res = await edge.request('POST', pushUrls.batch(cache), body, 'application/octet-stream');
    if (res.status === 404) return { unsupported: true };
    const line = res.text.trim().split('\n')[0] ?? '';
    if (res.status !== 200) throw new PushRequestError(`batch of ${entries.length} paths refused: ${res.status} ${line}`, res.status);
    let answer: BatchResponse;
    try {
      answer = JSON.parse(res.text) as BatchResponse;
      if (!Array.isArray(answer.results)) throw new Error('no results');
    } catch {
      throw new PushRequestError(`batch of ${entries.length} paths: the answer is not {"results": [...]}`);
    }
    const byPath = new Map(answer.results.map((r) => [r.storePath, r]));
    const temporary = answer.results.find((r) => isTemporary({ status: r.status, text: '', headers: answerHeaders() }));
    if (temporary && Date.now() + wait < deadline) {
      o.onRetry?.(`batch of ${entries.length} paths`, `${temporary.status} ${temporary.storePath}: ${temporary.message}`, wait);
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    const results = new Map<string, string | undefined>();
    for (const { path } of entries) {
      const r = byPath.get(path.path);
      results.set(path.path, !r ? 'the origin did not answer for it' : r.status === 200 ? undefined : `refused: ${r.status} ${r.message}`);
    }
    return { unsupported: false, results };
  }
}
