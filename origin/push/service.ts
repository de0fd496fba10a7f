/**
 * The push pipeline: uploaded files are staged; the narinfo (which Nix sends
 * last) is checked against the store and its NAR file, then the path is
 * imported through Nix, rooted for the cache and its NAR file kept for read-back.
 *
 * Checks before anything touches the store: the narinfo parses, its StorePath
 * is in our store directory and has the hash it was PUT under; the NAR file
 * it names was uploaded to this cache (FileHash/FileSize agree); every
 * reference is published in this cache already (Nix pushes references first)
 * — so a pusher cannot pull a path of the box into its cache just by naming
 * it; and the NAR decompresses to exactly NarSize bytes with NarHash.
 * A path the store already has is published after the same checks, with its
 * metadata compared to the store's; one already in the cache is a no-op.
 */
import type { Readable } from 'node:stream';
import { fingerprint } from '../../shared/fingerprint.ts';
import { formatSha256Nix32, parseSha256 } from '../../shared/hash.ts';
import { parseNarInfo, renderNarInfo, type NarInfo } from '../../shared/narinfo.ts';
import { partsNarFile } from '../../shared/push-protocol.ts';
import { isStorePathBaseName, parseStorePath, storePathBaseName } from '../../shared/store-path.ts';
import { narFileOfUrl, type Upload } from '../../shared/upload.ts';
import type { Signer } from '../../shared/signing.ts';
import type { Logger } from '../server/log.ts';
import type { Metrics } from '../server/metrics.ts';
import type { PathInfo, Store } from '../store/store.ts';
import { PushError, rejected } from './errors.ts';
import type { Staging } from './staging.ts';
import type { KeptFiles, KeptRecord } from './kept.ts';
import type { Importer } from './import.ts';
import { MIN_STREAM_BYTES, type StreamImports, type StreamedImport } from './stream-import.ts';
import { checkedInMemory, verifyNarBytes, verifyNarFile } from './verify.ts';
import { addGcRoot, removeGcRoot } from '../store/gc-roots.ts';
import { oneAtATime } from './one-at-a-time.ts';

/** A cache as push sees it. */
export interface PushTarget {
  name: string;
  /** Keys that sign what this cache serves; the first signs the narinfo handed to Nix on import. */
  signers: readonly Signer[];
  /** True when the path is in this cache's published set (for `publish = "all"`: valid in the store). */
  isPublished(storePath: string): Promise<boolean>;
  /** Brings the published sets up to date with new GC roots (they are otherwise polled). */
  settle?: () => Promise<void>;
}

export interface PushServiceOptions {
  store: Store;
  storeRoot: string;
  storeDir: string;
  staging: Staging;
  kept: KeptFiles;
  importer: Importer;
  log: Logger;
  /** Where import times go (eris_push_import_seconds). */
  metrics?: Pick<Metrics, 'pushImport'>;
  /** A narinfo named a NAR file nobody uploaded: an unfinished upload in parts of it is removed (eris push). */
  onUnknownNar?: (cache: string, file: string) => Promise<unknown>;
  /** Called with the NAR size before a path is imported (or rooted); throws to refuse it (the disk guard). */
  beforeImport?: (narSize: number) => Promise<void>;
  /** Largest narinfo, .ls, log or realisation upload accepted (they are small files). */
  maxMetadataBytes?: number;
  /** Imports that follow their upload in parts (startStream); without it, every import waits for its narinfo. */
  streams?: StreamImports;
}

/** Nix 2.8 takes any 2xx; eris answers 200 with one line saying what happened. */
/** `bytes`: the size of an accepted NAR file; `path`: the path an accepted narinfo put in the cache (for usage accounting). */
export type PushResult = { status: 200; message: string; bytes?: number; path?: { storePath: string; narSize: number } };

export interface PushService {
  /** A PUT of any upload path; `body` is the request body stream, `length` its Content-Length. */
  put(target: PushTarget, upload: Upload, body: Readable, length: number | undefined, user?: string): Promise<PushResult>;
  /**
   * Several narinfos with their NARs in memory, references first (POST …/v1/push/batch): every entry is
   * checked as a narinfo PUT is — its references in the cache or earlier in the batch — before any is
   * imported, so a bad entry refuses the whole batch (PushError) with nothing imported. Then they are
   * imported (references before referrers) and each answers for its own path.
   */
  putBatch(target: PushTarget, entries: readonly { narinfo: string; nar: Buffer }[], user?: string): Promise<BatchOutcome[]>;
  /**
   * An upload in parts began with the narinfo that will end it (eris push): when that narinfo checks as far
   * as it can before its NAR is here, the daemon starts taking the NAR as the parts arrive (stream-import.ts).
   * Resolves to why not, or undefined when it started; the narinfo PUT does the rest either way.
   */
  startStream(target: PushTarget, upload: { id: string; storePath: string; narHash: string; narSize: number }, narinfo: string, user?: string): Promise<string | undefined>;
}

/** One batch entry's fate after the checks: its path in the cache (200), or why not. */
export type BatchOutcome = { storePath: string; result: PushResult } | { storePath: string; error: PushError };

/** A small request body (metadata, JSON), at most `max` bytes (413 past it). */
export async function readSmall(body: Readable, max: number, length: number | undefined): Promise<Buffer> {
  if (length !== undefined && length > max) {
    body.resume();
    throw new PushError(413, `upload of ${length} bytes is too large for a metadata file (at most ${max})`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) {
      body.destroy();
      throw new PushError(413, `metadata upload is too large (at most ${max} bytes)`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const normalHash = (label: string, text: string): string => {
  try {
    return formatSha256Nix32(parseSha256(text));
  } catch {
    throw rejected(`narinfo ${label} is not a SHA-256 hash`);
  }
};

/**
 * The narinfo as uploaded, parsed and checked on its own: a store path of ours under the hash it was PUT at
 * (`hashPart`; undefined for a batch entry, which is PUT at no hash), sane names and hashes.
 */
export function checkNarInfo(text: string, hashPart: string | undefined, storeDir: string): NarInfo {
  let info: NarInfo;
  try {
    info = parseNarInfo(text);
  } catch (e) {
    throw rejected(`bad narinfo: ${(e as Error).message}`);
  }
  let parsed;
  try {
    parsed = parseStorePath(info.storePath, storeDir);
  } catch {
    throw rejected(`narinfo StorePath ${info.storePath.slice(0, 120)} is not a store path in ${storeDir}`);
  }
  if (hashPart !== undefined && parsed.hashPart !== hashPart) throw rejected(`narinfo StorePath ${info.storePath} does not belong to ${hashPart}.narinfo`);
  for (const r of info.references) if (!isStorePathBaseName(r)) throw rejected(`narinfo reference ${JSON.stringify(r.slice(0, 120))} is not a store path name`);
  if (info.deriver !== undefined && !isStorePathBaseName(info.deriver)) throw rejected('narinfo Deriver is not a store path name');
  info.narHash = normalHash('NarHash', info.narHash);
  if (info.fileHash !== undefined) info.fileHash = normalHash('FileHash', info.fileHash);
  return info;
}

/**
 * Milliseconds a batch's paths spent in each step of their commit, summed over the paths (they overlap: a
 * level's paths wait for their imports together): the room and publication checks, the import with its GC
 * root, the published set's refresh, the kept record.
 */
type StepTimes = Record<'checkMs' | 'importMs' | 'publishMs' | 'keepMs', number>;

/** `lap(step)` adds the time since the last lap (or the start) to `step`; nothing without `steps`. */
function stepClock(steps: StepTimes | undefined): (step: keyof StepTimes) => void {
  let t = performance.now();
  return (step) => {
    if (!steps) return;
    const now = performance.now();
    steps[step] += now - t;
    t = now;
  };
}

/** The NAR file a narinfo names (its URL). */
type NarFile = Exclude<ReturnType<typeof narFileOfUrl>, string>;

/** One narinfo PUT as its steps see it. */
interface NarInfoPush {
  target: PushTarget;
  hashPart: string;
  info: NarInfo;
  /** The NAR file the narinfo names. */
  nar: NarFile;
  /** Full store paths of the references. */
  refs: string[];
  user: string | undefined;
}

/** Where the NAR is: just uploaded (staged), kept from an earlier push of the same file, or in a batch's body. */
type FoundNar = { staged: { path: string; size: number } } | { kept: { record: KeptRecord; path?: string } } | { memory: Buffer };

/** What the checks found, for the steps that change the store. */
interface Checked {
  fileSize: number;
  /** The store's entry when the path is valid already. */
  existing: PathInfo | undefined;
  /** The NAR, when it is in memory. */
  narBytes: Buffer | undefined;
}

export function createPushService(o: PushServiceOptions): PushService {
  const maxMeta = o.maxMetadataBytes ?? 1024 * 1024;
  /** One narinfo per store path at a time in this process (Nix's path locks serialise across processes). */
  const serially = oneAtATime();

  /** An uploaded narinfo checked on its own, with the NAR file its URL names. */
  function narInfoPush(target: PushTarget, putAt: string | undefined, text: string, user: string | undefined): NarInfoPush {
    const info = checkNarInfo(text, putAt, o.storeDir);
    const hashPart = parseStorePath(info.storePath, o.storeDir).hashPart;
    const named = narFileOfUrl(info.url, info.compression);
    if (typeof named === 'string') throw rejected(named);
    if (info.fileHash !== undefined && info.fileHash !== named.fileHash) throw rejected(`narinfo FileHash ${info.fileHash} does not match its URL ${info.url}`);
    return { target, hashPart, info, nar: named, refs: info.references.map((r) => `${o.storeDir}/${r}`), user };
  }

  async function putNarInfo(target: PushTarget, hashPart: string, text: string, user: string | undefined): Promise<PushResult> {
    const push = narInfoPush(target, hashPart, text, user);
    const { info } = push;
    const named = push.nar;

    return serially(info.storePath, async () => {
      const staged = await o.staging.find(target.name, named.file);
      try {
        return await accept(push, staged ? { staged } : await findKept(push));
      } catch (e) {
        // A refused push leaves nothing behind (Nix uploads the NAR again next time); after a temporary
        // failure (5xx) Nix retries the narinfo alone, so the NAR stays until the time bound.
        if (staged && e instanceof PushError && e.status < 500) await o.staging.remove(staged.path);
        // A refused narinfo ends a stream of its path (after a temporary failure, its retry finishes it).
        if (e instanceof PushError && e.status < 500) o.streams?.take(info.storePath)?.close();
        throw e;
      }
    });
  }

  /** A NAR no upload staged: kept from an earlier push, or the narinfo came too early. */
  async function findKept(p: NarInfoPush): Promise<FoundNar> {
    const kept = await o.kept.find(p.target.name, p.nar.file);
    if (kept) return { kept };
    const unfinished = await o.onUnknownNar?.(p.target.name, p.nar.file);
    throw rejected(unfinished ? `the upload of ${p.info.url} is incomplete (removed): send every part before the narinfo` : `unknown NAR file: upload ${p.info.url} before the narinfo`);
  }

  /** The steps of an accepted narinfo: checks, import (when new), publication, the NAR kept for read-back. */
  async function accept(p: NarInfoPush, found: FoundNar): Promise<PushResult> {
    return commit(p, found, await check(p, found));
  }

  /** Every check before the store changes; `earlier`: paths a batch imports before this one (references may name them). */
  async function check(p: NarInfoPush, found: FoundNar, earlier?: { has(path: string): boolean }): Promise<Checked> {
    const { info } = p;
    const fileSize = 'staged' in found ? found.staged.size : 'memory' in found ? found.memory.length : found.kept.record.fileSize;
    if (!('kept' in found) && info.fileSize !== undefined && info.fileSize !== fileSize) {
      throw rejected(`narinfo FileSize ${info.fileSize} does not match the uploaded ${info.url} (${fileSize} bytes)`);
    }
    const existing = await checkAgainstStore(p, earlier);
    const narBytes = await checkNarBytes(p, found, existing !== undefined);
    return { fileSize, existing, narBytes };
  }

  /** The steps that change the store: room, GC root, import (when new), publication, the kept record. */
  async function commit(p: NarInfoPush, found: FoundNar, { fileSize, existing, narBytes }: Checked, steps?: StepTimes): Promise<PushResult> {
    const { info, target } = p;
    const lap = stepClock(steps);
    // Before anything is written into the store: room for the unpacked NAR (the disk guard).
    if (!existing) await o.beforeImport?.(info.narSize);
    const published = existing ? await target.isPublished(info.storePath) : false;
    lap('checkMs');
    // A stream that followed the path's upload: used for the import, or let go (its daemon holds Nix's lock on the path).
    const stream = o.streams?.take(info.storePath);
    if (existing) stream?.close();
    const newRoot = existing ? await addGcRoot(o.storeRoot, target.name, info.storePath) : await importAndRoot(p, found, fileSize, narBytes, stream);
    lap('importMs');
    if (!published) await publish(p, newRoot);
    lap('publishMs');
    await o.kept.keep(target.name, p.nar.file, 'staged' in found ? found.staged.path : undefined, {
      storePath: info.storePath, narHash: info.narHash, narSize: info.narSize, compression: p.nar.compression, fileSize,
    });
    lap('keepMs');
    const what = !existing ? 'imported' : published ? 'already in the cache' : 'published (already in the store)';
    o.log.info({ msg: `push: ${what}`, cache: target.name, path: info.storePath, user: p.user ?? null, narSize: info.narSize });
    return { status: 200, message: `${storePathBaseName(info.storePath)}: ${what}`, path: { storePath: info.storePath, narSize: info.narSize } };
  }

  /** A path the store has must be this very path; a new one needs its references in the cache already. Returns the store's entry. */
  async function checkAgainstStore(p: NarInfoPush, earlier?: { has(path: string): boolean }): Promise<PathInfo | undefined> {
    const { info } = p;
    const existing = await o.store.lookup(p.hashPart);
    if (existing) {
      if (existing.storePath !== info.storePath || existing.narHash !== info.narHash || existing.narSize !== info.narSize ||
        existing.references.join(' ') !== [...p.refs].sort().join(' ')) {
        throw new PushError(409, `${info.storePath} is already in the store with other contents or references`);
      }
      return existing;
    }
    for (const ref of p.refs) {
      if (ref === info.storePath || earlier?.has(ref)) continue;
      if (!(await p.target.isPublished(ref))) {
        throw rejected(`missing reference: ${ref} is not in cache ${p.target.name}${earlier ? ' nor earlier in the batch' : ''}; push it first`);
      }
    }
    return undefined;
  }

  /**
   * The same hash check whether or not the store has the path; a small NAR comes back in memory for the
   * import. A new path's large staged NAR is checked as it is fed to the daemon instead (narChunks holds
   * its last bytes back until size and hash are right): one pass over the file, not two.
   */
  async function checkNarBytes(p: NarInfoPush, found: FoundNar, inStore: boolean): Promise<Buffer | undefined> {
    if ('staged' in found) {
      if (!inStore && !checkedInMemory(found.staged.size, p.nar.compression, p.info)) return undefined;
      return verifyNarFile(found.staged.path, p.nar.compression, p.info, { fileSize: found.staged.size });
    }
    if ('memory' in found) {
      verifyNarBytes(found.memory, p.info);
      return found.memory;
    }
    const r = found.kept.record;
    if (r.narHash !== p.info.narHash || r.narSize !== p.info.narSize || r.compression !== p.nar.compression) {
      throw rejected(`the uploaded ${p.info.url} holds another NAR than this narinfo says`);
    }
    return undefined;
  }

  /**
   * The import and the path's GC root at once (the root is a file-system round trip the pusher would
   * otherwise wait for after the import): the daemon holds a temporary root on the path from the start
   * of its import for as long as the connection lasts, so the path is never unrooted while valid. The
   * answer waits for both. A failed import takes its new root away; true when the root is new.
   */
  async function importAndRoot(p: NarInfoPush, found: FoundNar, fileSize: number, narBytes: Buffer | undefined, stream?: StreamedImport): Promise<boolean> {
    const rooted = addGcRoot(o.storeRoot, p.target.name, p.info.storePath);
    rooted.catch(() => {});
    try {
      await importSigned(p, found, fileSize, narBytes, stream, rooted);
    } catch (e) {
      if (await rooted.catch(() => false) && !(await o.store.isValid(p.info.storePath).catch(() => false))) {
        await removeGcRoot(o.storeRoot, p.target.name, p.info.storePath).catch(() => {});
      }
      throw e;
    } finally {
      // The stream's daemon held a temporary root on the path until now: the GC root is there (or the import failed).
      if (stream) void rooted.catch(() => {}).finally(() => stream.close());
    }
    return rooted;
  }

  /** The narinfo handed to Nix: signed with the cache's key (which the store checks). */
  function signedInfo(p: NarInfoPush, fileSize: number): NarInfo {
    const { info } = p;
    return {
      ...info,
      fileHash: p.nar.fileHash,
      fileSize,
      // Ours, which the store checks; the pusher's own (unverified here, checked by whoever trusts them) are kept.
      sigs: [...info.sigs.filter((s) => /^[^:\s]+:[A-Za-z0-9+/=]+$/.test(s)),
        ...p.target.signers.slice(0, 1).map((s) => s.sign(fingerprint(info.storePath, info.narHash, info.narSize, [...p.refs].sort())))],
    };
  }

  /**
   * The stream that followed this path's upload, when it was given this very narinfo: lets its last bytes go
   * and waits for it. False when there is none, or it failed (then the staged NAR is imported as usual).
   */
  async function finishStream(stream: StreamedImport | undefined, signed: NarInfo): Promise<boolean> {
    if (!stream) return false;
    if (renderNarInfo(stream.info) !== renderNarInfo(signed)) {
      stream.close();
      o.log.info({ msg: 'push: streamed import dropped', path: signed.storePath, reason: 'its narinfo differs from the one given at the start' });
      return false;
    }
    try {
      await stream.finish();
      return true;
    } catch (e) {
      stream.close();
      o.log.info({ msg: 'push: streamed import dropped', path: signed.storePath, reason: (e as Error).message });
      return false;
    }
  }

  /** Into the store through Nix, signed with the cache's key (which the store checks); `stream` followed its upload here. */
  async function importSigned(p: NarInfoPush, found: FoundNar, fileSize: number, narBytes: Buffer | undefined, stream: StreamedImport | undefined,
    rooted: Promise<unknown>): Promise<void> {
    const signed = signedInfo(p, fileSize);
    const started = performance.now();
    try {
      // The stream that followed the upload imports, here or (workers > 1) in the process whose stream follows the NAR.
      const streamed = stream ? await finishStream(stream, signed) : await o.streams?.handOff(p.target.name, signed, rooted);
      if (!streamed) await o.importer.importPath(signed, narBytes ?? ('staged' in found ? found.staged.path : 'kept' in found ? found.kept.path ?? '' : ''));
      o.metrics?.pushImport((performance.now() - started) / 1000, true);
      // An import over the daemon takes milliseconds: the lookups below must not answer from before it.
      o.store.refresh?.();
    } catch (e) {
      o.metrics?.pushImport((performance.now() - started) / 1000, false);
      throw e;
    }
  }

  /** In the cache once its published set has the new root; a path its exclude patterns keep out stays in the store unpublished. */
  async function publish(p: NarInfoPush, newRoot: boolean): Promise<void> {
    await p.target.settle?.();
    if (await p.target.isPublished(p.info.storePath)) return;
    if (newRoot) await removeGcRoot(o.storeRoot, p.target.name, p.info.storePath).catch(() => {});
    throw rejected(`${p.info.storePath} is excluded from cache ${p.target.name} (its exclude patterns); it stays in the store unpublished`);
  }

  /**
   * A batch: each entry parsed and checked (references in the cache or earlier in the batch) before any
   * changes the store; then imported in levels — an entry after every entry it refers to — each level at
   * once (the importer groups what queues into one AddMultipleToStore).
   */
  async function putBatch(target: PushTarget, entries: readonly { narinfo: string; nar: Buffer }[], user: string | undefined): Promise<BatchOutcome[]> {
    const started = performance.now();
    const pushes: { p: NarInfoPush; found: FoundNar; checked: Checked; level: number }[] = [];
    const inBatch = new Map<string, number>(); // store path → its entry's level
    for (const [i, e] of entries.entries()) {
      try {
        const p = narInfoPush(target, undefined, e.narinfo, user);
        if (p.nar.compression !== 'none' || p.nar.fileHash !== p.info.narHash) {
          throw rejected(`a batch entry carries its NAR itself: URL nar/<NarHash>.nar, Compression: none (not ${p.info.url.slice(0, 120)})`);
        }
        if (inBatch.has(p.info.storePath)) throw rejected(`${p.info.storePath} is in the batch twice`);
        const found: FoundNar = { memory: e.nar };
        const checked = await check(p, found, inBatch);
        const level = 1 + Math.max(0, ...p.refs.map((r) => inBatch.get(r) ?? 0));
        inBatch.set(p.info.storePath, level);
        pushes.push({ p, found, checked, level });
      } catch (err) {
        if (err instanceof PushError) throw new PushError(err.status, `entry ${i + 1}: ${err.message}`, err.retryAfterSeconds);
        throw err;
      }
    }
    const checkedAt = performance.now();
    const steps: StepTimes = { checkMs: 0, importMs: 0, publishMs: 0, keepMs: 0 };
    const outcomes = new Map<string, BatchOutcome>();
    for (let level = 1; outcomes.size < pushes.length; level++) {
      await Promise.all(pushes.filter((x) => x.level === level).map(async ({ p, found, checked }) => {
        const storePath = p.info.storePath;
        const failedRef = p.refs.find((r) => r !== storePath && outcomes.get(r) && 'error' in outcomes.get(r)!);
        if (failedRef) {
          outcomes.set(storePath, { storePath, error: rejected(`not imported: its reference ${failedRef} was not`) });
          return;
        }
        try {
          // Under the path's lock, afresh: another push may have imported it since the checks.
          const result = await serially(storePath, async () => commit(p, found, { ...checked, existing: await checkAgainstStore(p, inBatch) }, steps));
          outcomes.set(storePath, { storePath, result });
        } catch (err) {
          if (!(err instanceof PushError)) throw err;
          outcomes.set(storePath, { storePath, error: err });
        }
      }));
    }
    o.log.info({ msg: 'push: batch', cache: target.name, user: user ?? null, paths: pushes.length, levels: Math.max(...pushes.map((x) => x.level)),
      checkMs: Math.round(checkedAt - started), importMs: Math.round(performance.now() - checkedAt),
      pathMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k.replace(/Ms$/, ''), Math.round(v)])) });
    return pushes.map(({ p }) => outcomes.get(p.info.storePath)!);
  }

  /** The upload's narinfo, checked as far as it can be before the NAR is here, then a stream started for it. */
  async function startStream(target: PushTarget, upload: { id: string; storePath: string; narHash: string; narSize: number }, text: string, user: string | undefined): Promise<string | undefined> {
    if (!o.streams) return 'no streams here';
    if (upload.narSize < MIN_STREAM_BYTES) return 'small';
    if (o.streams.has(upload.storePath)) return 'a stream runs for this path';
    let p: NarInfoPush;
    try {
      const hashPart = parseStorePath(upload.storePath, o.storeDir).hashPart;
      p = narInfoPush(target, hashPart, text, user);
    } catch (e) {
      return (e as Error).message;
    }
    const { info } = p;
    if (info.storePath !== upload.storePath || info.narHash !== upload.narHash || info.narSize !== upload.narSize) return 'the narinfo is not of this upload';
    if (p.nar.compression !== 'none' || p.nar.file !== partsNarFile(upload.narHash)) return `the narinfo names ${info.url}, not this upload's NAR`;
    if (info.fileSize !== undefined && info.fileSize !== upload.narSize) return 'the narinfo\'s FileSize is not the NAR\'s size';
    // Checked again when the narinfo comes (and its references then): this is only whether to start.
    if (await o.store.lookup(p.hashPart)) return 'in the store already';
    try {
      await o.beforeImport?.(info.narSize);
    } catch (e) {
      return (e as Error).message;
    }
    return o.streams.start(target.name, upload.id, signedInfo(p, upload.narSize)) ? undefined : 'streams busy';
  }

  return {
    startStream,
    putBatch: (target, entries, user) => putBatch(target, entries, user),
    async put(target, upload, body, length, user) {
      switch (upload.kind) {
        case 'nar': {
          const file = await o.staging.receive(target.name, upload.file, body, length);
          if (formatSha256Nix32(file.sha256) !== upload.fileHash) {
            await o.staging.remove(file.path);
            throw rejected(`file hash mismatch: the body of nar/${upload.file} hashes to ${formatSha256Nix32(file.sha256)}`);
          }
          return { status: 200, message: `staged nar/${upload.file}`, bytes: file.size };
        }
        case 'narinfo': {
          const text = (await readSmall(body, maxMeta, length)).toString('utf8');
          return putNarInfo(target, upload.hashPart, text, user);
        }
        case 'listing':
        case 'log':
        case 'realisation': {
          // Listings are generated from the store; logs and realisations are accepted so `nix copy` and
          // `nix store copy-log` succeed, but not registered (Nix 2.8 has no import for them alone).
          await readSmall(body, upload.kind === 'log' ? 64 * maxMeta : maxMeta, length);
          return { status: 200, message: `accepted (${upload.kind} uploads are not stored)` };
        }
      }
    },
  };
}
