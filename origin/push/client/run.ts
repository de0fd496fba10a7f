/**
 * `eris push` from start to end: the local closure, one question to the edge
 * for what the cache lacks, then the missing paths: small ones several to a
 * request (batches: narinfo and NAR together), larger ones each as a NAR
 * upload (in parts when needed) and its narinfo — always references first,
 * several requests at once. The origin signs and imports each path when its
 * narinfo arrives. An origin without batches gets every path the second way.
 */
import { renderNarInfo } from '../../../shared/narinfo.ts';
import { MAX_MISSING_PATHS, MAX_UPLOAD_HEADER, partsNarFile, pushUrls, type MissingResponse } from '../../../shared/push-protocol.ts';
import { parseStorePath, storePathBaseName } from '../../../shared/store-path.ts';
import { localClosure, storePathOf, type LocalPath, type NixSource } from './closure.ts';
import { PushRequestError, type EdgeClient } from './edge.ts';
import { partBuffers, partSlots, readSmallNar, uploadNar } from './nar-upload.ts';
import { DEFAULT_BATCH_PATHS, planUnits, sendBatch } from './batch.ts';
import type { Progress } from './progress.ts';
import { CONTENT_TYPE } from '../../../shared/contract.ts';

/** Default part size: bounded memory (one part per upload in flight), few requests per NAR. */
export const DEFAULT_PART_BYTES = 16 * 1024 * 1024;

export interface PushRunOptions {
  edge: EdgeClient;
  cache: string;
  source: NixSource;
  paths: string[];
  /** NARs uploaded at once. */
  jobs: number;
  /** Largest part (the edge's limit lowers it). */
  partSize?: number;
  retryForMs: number;
  progress: Progress;
  /** Only say what is missing. */
  dryRun?: boolean;
  /** Most paths per batch (0: no batches, every path on its own); default DEFAULT_BATCH_PATHS. */
  batchPaths?: number;
}

export interface PushSummary {
  closure: number;
  missing: string[];
  pushed: number;
  bytes: number;
  failed: { path: string; error: string }[];
  seconds: number;
}

/** The narinfo the client sends last: the NAR uploaded uncompressed, named by its hash; the origin adds its signature. */
export function narInfoFor(p: LocalPath): string {
  return renderNarInfo({
    storePath: p.path,
    url: `nar/${partsNarFile(p.narHash)}`,
    compression: 'none',
    fileHash: p.narHash,
    fileSize: p.narSize,
    narHash: p.narHash,
    narSize: p.narSize,
    references: p.references.map(storePathBaseName).sort(),
    deriver: p.deriver ? storePathBaseName(p.deriver) : undefined,
    sigs: p.signatures,
    ca: p.ca,
  });
}

/** At most `n` at once. */
function limiter(n: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async function <T>(fn: () => Promise<T>): Promise<T> {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** The paths of `closure` the cache lacks, asked in as few requests as the protocol allows; and the edge's part limit. */
export async function askMissing(edge: EdgeClient, cache: string, closure: readonly string[]): Promise<{ missing: Set<string>; maxUpload?: number }> {
  const missing = new Set<string>();
  let maxUpload: number | undefined;
  for (let i = 0; i < closure.length; i += MAX_MISSING_PATHS) {
    const { value, headers } = await edge.json<MissingResponse>('POST', pushUrls.missing(cache), { paths: closure.slice(i, i + MAX_MISSING_PATHS) });
    if (!value || !Array.isArray(value.missing)) throw new PushRequestError('the missing answer is not {"missing": [...]}');
    for (const p of value.missing) missing.add(p);
    const limit = Number(headers.get(MAX_UPLOAD_HEADER));
    if (Number.isSafeInteger(limit) && limit > 0) maxUpload = limit;
  }
  return { missing, maxUpload };
}

export async function runPush(o: PushRunOptions): Promise<PushSummary> {
  const started = Date.now();
  const roots = o.paths.map((p) => storePathOf(p)); // a clear error before Nix is asked
  const closure = await localClosure(o.source, roots);
  const { missing, maxUpload } = await askMissing(o.edge, o.cache, closure.map((p) => p.path));
  const todo = closure.filter((p) => missing.has(p.path));
  const summary: PushSummary = { closure: closure.length, missing: todo.map((p) => p.path), pushed: 0, bytes: 0, failed: [], seconds: 0 };
  if (o.dryRun || !todo.length) {
    summary.seconds = (Date.now() - started) / 1000;
    return summary;
  }
  // The edge's limit is on the whole request body: a part is all of it.
  const partSize = Math.max(1, Math.min(o.partSize ?? DEFAULT_PART_BYTES, maxUpload ?? Infinity));
  o.progress.start(todo.length, todo.reduce((a, p) => a + p.narSize, 0), closure.length - todo.length);

  const slot = limiter(Math.max(1, o.jobs));
  /** Each path's push: resolves once its narinfo was accepted. */
  const done = new Map<string, Promise<void>>();
  const ctx = {
    edge: o.edge, cache: o.cache, source: o.source, partSize, retryForMs: o.retryForMs,
    // Parts of one NAR go several at once too; jobs bounds the parts in memory across all NARs.
    slot: partSlots(Math.max(1, o.jobs)),
    buffers: partBuffers(),
    narinfoOf: narInfoFor,
    onBytes: (n: number) => o.progress.bytes(n),
    onRetry: (what: string, reason: string, ms: number) => o.progress.retry(what, reason, ms),
  };

  /** The origin accepts a narinfo only once its references are in the cache: waits for those pushed now (but `own`'s). */
  async function referencesIn(p: LocalPath, own?: ReadonlySet<string>, local?: ReadonlyMap<string, Promise<void>>): Promise<void> {
    for (const ref of p.references) {
      const d = ref !== p.path && !own?.has(ref) ? local?.get(ref) ?? done.get(ref) : undefined;
      if (d) await d.catch(() => { throw new Error(`${p.path}: not pushed, its reference ${ref} failed`); });
    }
  }

  const accepted = (p: LocalPath) => {
    summary.pushed++;
    summary.bytes += p.narSize;
    o.progress.pathDone(p.path, p.narSize);
  };

  /** One path on its own: its NAR uploaded (in parts when large), then its narinfo. */
  async function pushOne(p: LocalPath, local?: ReadonlyMap<string, Promise<void>>): Promise<void> {
    await slot(() => uploadNar(ctx, p));
    await referencesIn(p, undefined, local);
    const res = await o.edge.request('PUT', pushUrls.narinfo(o.cache, parseStorePath(p.path).hashPart), narinfos.get(p.path)!, CONTENT_TYPE.narinfo);
    if (res.status < 200 || res.status > 299) throw new PushRequestError(`${p.path}: narinfo refused: ${res.status} ${res.text.trim().split('\n')[0] ?? ''}`, res.status);
    accepted(p);
  }

  let batches = (o.batchPaths ?? DEFAULT_BATCH_PATHS) > 0;
  /** A batch once every path it refers to outside itself is in; each path's own promise. Path by path if the origin has no batches. */
  function pushBatch(paths: LocalPath[]): Map<string, Promise<void>> {
    const own = new Set(paths.map((p) => p.path));
    const sent = (async () => {
      for (const p of paths) await referencesIn(p, own);
      return slot(async () => {
        if (!batches) return undefined;
        const entries = await Promise.all(paths.map(async (p) => ({ path: p, narinfo: narinfos.get(p.path)!, nar: await readSmallNar(ctx, p) })));
        const answer = await sendBatch(o.edge, o.cache, entries, { retryForMs: o.retryForMs, onRetry: ctx.onRetry });
        if (!answer.unsupported) return answer.results;
        batches = false; // an origin before batches (404): every path on its own from now on
        return undefined;
      });
    })();
    const each = sent.then((results) => {
      const local = new Map<string, Promise<void>>();
      for (const p of paths) {
        const d = results ? (async () => {
          const error = results.get(p.path);
          if (error) throw new PushRequestError(`${p.path}: ${error}`);
          o.progress.bytes(p.narSize);
          accepted(p);
        })() : pushOne(p, local);
        d.catch(() => {});
        local.set(p.path, d);
      }
      return local;
    });
    return new Map(paths.map((p) => [p.path, each.then((m) => m.get(p.path)!)]));
  }

  const narinfos = new Map(todo.map((p) => [p.path, narInfoFor(p)]));
  const units = planUnits(todo, {
    maxBytes: maxUpload ?? Infinity,
    maxPaths: batches ? o.batchPaths ?? DEFAULT_BATCH_PATHS : 0,
    narinfoBytes: (p) => Buffer.byteLength(narinfos.get(p.path)!),
  });
  const track = (p: LocalPath, pushed: Promise<void>) => {
    const d = pushed.catch((e: unknown) => {
      const error = e instanceof Error ? e.message : String(e);
      summary.failed.push({ path: p.path, error });
      o.progress.failed(p.path, error);
      throw e;
    });
    d.catch(() => {});
    done.set(p.path, d);
  };
  // In order: a unit looks up the pushes of the units before it.
  for (const u of units) {
    if (u.kind === 'single') track(u.path, pushOne(u.path));
    else {
      const each = pushBatch(u.paths);
      for (const p of u.paths) track(p, each.get(p.path)!);
    }
  }
  await Promise.allSettled(done.values());
  summary.seconds = (Date.now() - started) / 1000;
  o.progress.finish();
  return summary;
}
