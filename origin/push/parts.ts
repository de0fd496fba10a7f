/**
 * NARs uploaded in parts (`eris push`, shared/push-protocol.ts), in the
 * staging area of their cache beside the stock uploads:
 *
 *   staging/<cache>/upload-<id>.json                what the upload is (store path, NAR hash and size)
 *   staging/<cache>/upload-<id>.nar                 the NAR's bytes, each part written at its offset
 *   staging/<cache>/upload-<id>.<offset>-<size>.ok   one per part held: written whole, of its declared hash
 *
 * Parts may arrive in any order and several at once (a client sends a few
 * concurrently), also to different processes of one origin (`workers`): each
 * part is streamed into its own region of the data file while it is hashed,
 * and only when it is whole and of its declared size and hash is its marker
 * created and the part acknowledged. A marker is a file of its own, so no
 * record is ever rewritten by two writers; a region without a marker (a part
 * cut by a crash or a restart) is simply not held and is sent again. A part
 * overlapping one already held is refused (409). When the held parts cover
 * the NAR, the whole file must hash to the declared NarHash (hashed as the
 * parts arrive, in order, so that little is left to hash then), then it becomes
 * the staged file `<narHash nix32>.nar` that the narinfo names, and the stock
 * narinfo PUT imports it (service.ts); two processes completing it at once
 * both find it staged. Anything wrong with the bytes removes the upload.
 * The staging area's bounds apply: bytes (checked before a part is written)
 * and age (an upload no narinfo completes is swept with the other files).
 *
 * `follow` reads an upload's bytes in order as its parts arrive, for a Nix
 * daemon to import while the rest is still on its way (stream-import.ts).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { partsNarFile, WHOLE_NAR_REFUSED, type UploadStart, type UploadState } from '../../shared/push-protocol.ts';
import { PushError, rejected, tryLater } from './errors.ts';
import { hashingMeter } from './meter.ts';
import { oneAtATime } from './one-at-a-time.ts';

interface UploadRecord extends UploadStart {
  id: string;
}

/** A part held: [offset, offset + size). */
type Held = [offset: number, size: number];

export interface PartsOptions {
  /** The staging root (staging.ts's `dir`): one directory per cache. */
  dir: string;
  /** The staging area's byte bound (all caches, stock uploads included). */
  maxBytes: number;
  usedBytes: () => Promise<number>;
  /** Called for each part written and acknowledged (logging, tests counting parts). */
  onPart?: (e: { cache: string; id: string; storePath: string; offset: number; size: number }) => void;
  /** Called for a part sent again that is held already (its acknowledgement was lost): nothing written. */
  onPartAgain?: (e: { cache: string; id: string; storePath: string; offset: number; size: number }) => void;
  /** Called with a part's length before it is written; throws to refuse it (the disk guard). */
  beforeWrite?: (bytes: number) => Promise<void>;
}

export interface Parts {
  /** Starts an upload of `start`'s NAR, or finds the one under way (or complete) for it. */
  begin(cache: string, start: UploadStart): Promise<UploadState>;
  state(cache: string, id: string): Promise<UploadState>;
  /** Receives one part; resolves to the state after it (acknowledged) or rejects with a PushError. */
  part(cache: string, id: string, offset: number, sha256Hex: string, body: Readable, length: number | undefined): Promise<UploadState>;
  /** Removes an unfinished upload of this NAR (a narinfo named it before its last part). */
  discardIncomplete(cache: string, narFile: string): Promise<boolean>;
  /**
   * The upload's NAR as it arrives: the bytes held from offset 0 without a gap, in order, as the parts come
   * (each checked against its own hash when it came), in this process or another. The last FOLLOW_TAIL bytes
   * only once the whole NAR was checked (the upload complete) and `mayEnd` resolved. Throws when the upload is
   * removed (a bad part, swept), when nothing arrives for `idleMs`, or when `signal` aborts. The chunk yielded
   * is reused for the next one. `nar` is what the upload is of: an upload complete already is followed from
   * its staged NAR.
   */
  follow(cache: string, id: string, nar: { narHash: string; narSize: number }, mayEnd: Promise<void>, o?: FollowOptions): AsyncGenerator<Buffer>;
}

export interface FollowOptions {
  /** Give up after this long without a new part (or without `mayEnd` once complete); default 10 minutes. */
  idleMs?: number;
  signal?: AbortSignal;
  /** Called once when all but the last bytes were read and the whole NAR is checked: only `mayEnd` is awaited. */
  onTail?: () => void;
  /** Asked while only `mayEnd` is awaited: true lets the last bytes go as well (another process accepted the narinfo). */
  mayEndElsewhere?: () => Promise<boolean>;
}

/** The bytes `follow` holds back until the NAR is whole and checked and its narinfo accepted. */
export const FOLLOW_TAIL = 64 * 1024;
/** How often `follow` looks at the staging directory when no part arrived in this process (another worker's parts). */
const FOLLOW_POLL_MS = 100;

/** The end of the parts held from offset 0 on without a gap. */
function contiguous(held: readonly Held[]): number {
  let end = 0;
  for (const [offset, size] of held) {
    if (offset > end) break;
    end = Math.max(end, offset + size);
  }
  return end;
}

const heldBytes = (held: readonly Held[]) => held.reduce((a, [, size]) => a + size, 0);

export function createParts(o: PartsOptions): Parts {
  /** One completion of an upload at a time in this process (other processes find it staged). */
  const finishing = oneAtATime();

  const dirOf = (cache: string) => join(o.dir, cache);
  const dataOf = (cache: string, id: string) => join(dirOf(cache), `upload-${id}.nar`);
  const recordOf = (cache: string, id: string) => join(dirOf(cache), `upload-${id}.json`);
  const markerOf = (cache: string, id: string, [offset, size]: Held) => join(dirOf(cache), `upload-${id}.${offset}-${size}.ok`);
  const stagedNar = (cache: string, narHash: string) => join(dirOf(cache), partsNarFile(narHash));

  async function load(cache: string, id: string): Promise<UploadRecord | undefined> {
    try {
      const r = JSON.parse(await readFile(recordOf(cache, id), 'utf8')) as UploadRecord;
      return r && r.id === id && typeof r.narSize === 'number' ? r : undefined;
    } catch {
      return undefined;
    }
  }

  /** The parts of an upload held now, by offset. */
  async function held(cache: string, id: string): Promise<Held[]> {
    const prefix = `upload-${id}.`;
    const out: Held[] = [];
    for (const name of await readdir(dirOf(cache)).catch(() => [] as string[])) {
      const m = name.startsWith(prefix) ? /^(\d+)-(\d+)\.ok$/.exec(name.slice(prefix.length)) : null;
      if (m) out.push([Number(m[1]), Number(m[2])]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  async function remove(cache: string, id: string): Promise<void> {
    prefixes.delete(`${cache} ${id}`);
    await rm(recordOf(cache, id), { force: true });
    await rm(dataOf(cache, id), { force: true });
    await Promise.all((await held(cache, id)).map((h) => rm(markerOf(cache, id, h), { force: true })));
    wake(`${cache} ${id}`);
  }

  /** Followers waiting for an upload to move on (a part held, the upload complete or removed), by `cache id`. */
  const waiters = new Map<string, Set<() => void>>();
  function wake(key: string): void {
    const set = waiters.get(key);
    waiters.delete(key);
    for (const f of set ?? []) f();
  }
  /** Resolves on the next wake of `key` or after `ms`; rejects when `signal` aborts. */
  function waitFor(key: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new Error('stopped'));
      let set = waiters.get(key);
      if (!set) waiters.set(key, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        signal?.removeEventListener('abort', aborted);
        resolve();
      };
      const aborted = () => {
        done();
        reject(new Error('stopped'));
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  const stateOf = (r: UploadRecord, parts: Held[], complete = false): UploadState =>
    ({ id: r.id, offset: complete ? r.narSize : contiguous(parts), narSize: r.narSize, complete, received: complete ? [[0, r.narSize]] : parts });

  async function isStaged(cache: string, narHash: string, narSize: number): Promise<boolean> {
    const st = await stat(stagedNar(cache, narHash)).catch(() => undefined);
    return st?.isFile() === true && st.size === narSize;
  }

  /** The unfinished uploads of a cache. */
  async function uploads(cache: string): Promise<UploadRecord[]> {
    const names = await readdir(dirOf(cache)).catch(() => [] as string[]);
    const out: UploadRecord[] = [];
    for (const n of names) {
      const m = /^upload-([0-9a-f]{32})\.json$/.exec(n);
      const r = m && (await load(cache, m[1]!));
      if (r) out.push(r);
    }
    return out;
  }

  /**
   * The whole NAR's hash, advanced while parts arrive, so the completion hashes only what is left (the pass
   * over the whole file at completion was 0.53 s of a 256 MiB push's wait after its last part,
   * bench/push-big-trace.ts). Whoever reads the bytes right after `upTo` first feeds them: a follower in this
   * process as it reads them for its daemon (`fed`), else, when no follower is, a background read of the data
   * file each time the parts held without a gap from offset 0 grow (from the page cache: just written).
   * So with a streamed import the origin reads and hashes the NAR once besides each part's own hash, not twice
   * (a 256 MiB push: about 0.2 s of CPU less). Per process and in memory: another worker's or a restarted
   * origin's completion hashes the file from 0. A failed step drops the running hash.
   */
  interface Prefix { hash: Hash; upTo: number; failed: boolean; chain: Promise<void>; followers: number }
  const prefixes = new Map<string, Prefix>();
  const MAX_PREFIXES = 64; // uploads under way at once in one process; past it the oldest hashes from 0 at completion

  const newPrefix = (): Prefix => ({ hash: createHash('sha256'), upTo: 0, failed: false, chain: Promise.resolve(), followers: 0 });

  function prefixOf(key: string): Prefix {
    let st = prefixes.get(key);
    if (!st) {
      if (prefixes.size >= MAX_PREFIXES) prefixes.delete(prefixes.keys().next().value!);
      st = newPrefix();
      prefixes.set(key, st);
    }
    return st;
  }

  /** Bytes [at, at + chunk.length) of the NAR, read by a follower: hashed when they are the next ones. */
  function fed(key: string, at: number, chunk: Buffer): void {
    const st = prefixes.get(key);
    if (st && !st.failed && st.upTo === at) {
      st.hash.update(chunk);
      st.upTo = at + chunk.length;
    }
  }

  /**
   * Hashes the data file from `st.upTo` to `to`, a piece at a time into one reused buffer (a fresh 1 MiB
   * buffer a read costs its pages' first touch, more than the copy: see the client's partBuffers). A piece
   * a follower fed meanwhile is skipped.
   */
  async function hashUpTo(file: string, st: Prefix, to: number): Promise<void> {
    if (to <= st.upTo) return;
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, to - st.upTo));
      while (st.upTo < to) {
        const at = st.upTo;
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - at), at);
        if (bytesRead === 0) break; // shorter than its parts say: the whole hash will not match (400)
        if (st.upTo !== at) continue; // a follower got there first
        st.hash.update(buf.subarray(0, bytesRead));
        st.upTo = at + bytesRead;
      }
    } finally {
      await fh.close();
    }
  }

  function advancePrefix(cache: string, id: string, parts: readonly Held[]): void {
    const it = prefixOf(`${cache} ${id}`);
    if (it.followers > 0) return; // the follower hashes as it reads
    const end = contiguous(parts);
    it.chain = it.chain.then(async () => {
      if (it.failed || end <= it.upTo) return;
      await hashUpTo(dataOf(cache, id), it, end);
    }).catch(() => {
      it.failed = true;
    });
  }

  /** SHA-256 of the NAR's `narSize` bytes: the running hash finished, or the whole file read. */
  async function wholeHash(cache: string, id: string, narSize: number): Promise<Buffer> {
    const key = `${cache} ${id}`;
    const st = prefixes.get(key);
    if (st) {
      await st.chain;
      if (!st.failed && st.upTo <= narSize) {
        await hashUpTo(dataOf(cache, id), st, narSize);
        if (st.upTo === narSize && prefixes.get(key) === st) {
          prefixes.delete(key);
          return st.hash.digest();
        }
      }
      prefixes.delete(key);
    }
    const fresh = newPrefix();
    await hashUpTo(dataOf(cache, id), fresh, narSize);
    return fresh.hash.digest();
  }

  /** Streams one part into its region of the data file; resolves to its SHA-256 (hex) once all `length` bytes are there. */
  async function writePart(data: string, offset: number, length: number, body: Readable): Promise<string> {
    const meter = hashingMeter(length, () => rejected('part longer than its Content-Length'));
    try {
      // WriteStream gathers buffered chunks into one writev.
      await pipeline(body, meter.stream, createWriteStream(data, { flags: 'r+', start: offset, highWaterMark: 1024 * 1024 }));
    } catch (e) {
      if (e instanceof PushError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC') throw tryLater('staging disk full, retry later', 30);
      if (code === 'ENOENT') throw new PushError(404, 'the upload was removed meanwhile (finished, refused or swept: start again)');
      throw new PushError(400, `part did not arrive whole (${code ?? (e as Error).message})`);
    }
    if (meter.size() !== length) throw new PushError(400, `part ended after ${meter.size()} of ${length} bytes`);
    return meter.sha256().toString('hex');
  }

  /** Every byte held: the whole NAR checked, then staged for its narinfo. */
  async function complete(cache: string, r: UploadRecord, last: Held): Promise<UploadState> {
    return finishing(`${cache} ${r.id}`, async () => {
      if (!(await isStaged(cache, r.narHash, r.narSize))) {
        const narHash = formatSha256Nix32(await wholeHash(cache, r.id, r.narSize).catch(async (e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT' && (await isStaged(cache, r.narHash, r.narSize))) return undefined; // another process finished it
          throw e;
        }) ?? Buffer.alloc(0));
        if (!(await isStaged(cache, r.narHash, r.narSize))) {
          if (narHash !== r.narHash) {
            await remove(cache, r.id);
            throw rejected(`${WHOLE_NAR_REFUSED} ${narHash}, not the declared ${r.narHash} (parts of another NAR?); upload removed`);
          }
          await rename(dataOf(cache, r.id), stagedNar(cache, r.narHash)).catch(async (e: NodeJS.ErrnoException) => {
            if (!(e.code === 'ENOENT' && (await isStaged(cache, r.narHash, r.narSize)))) throw e;
          });
        }
      }
      await remove(cache, r.id);
      o.onPart?.({ cache, id: r.id, storePath: r.storePath, offset: last[0], size: last[1] });
      return stateOf(r, [], true);
    });
  }

  return {
    async begin(cache, start) {
      return finishing(`begin ${cache} ${start.narHash}`, async () => {
        if (await isStaged(cache, start.narHash, start.narSize)) return { id: '0'.repeat(32), offset: start.narSize, narSize: start.narSize, complete: true, received: [[0, start.narSize]] };
        const same = (await uploads(cache)).filter((r) => r.narHash === start.narHash && r.narSize === start.narSize);
        // Resume the one furthest on (two pushers of the same path share it).
        let best: { r: UploadRecord; parts: Held[] } | undefined;
        for (const r of same) {
          const parts = await held(cache, r.id);
          if (!best || heldBytes(parts) > heldBytes(best.parts)) best = { r, parts };
        }
        if (best) return stateOf(best.r, best.parts);
        if (start.narSize > o.maxBytes) throw new PushError(413, `NAR of ${start.narSize} bytes is larger than the staging area (${o.maxBytes} bytes, push_staging_max_bytes)`);
        const r: UploadRecord = { id: randomId(), ...start };
        await mkdir(dirOf(cache), { recursive: true });
        await writeFile(dataOf(cache, r.id), '');
        const tmp = `${recordOf(cache, r.id)}.tmp`;
        await writeFile(tmp, JSON.stringify(r));
        await rename(tmp, recordOf(cache, r.id));
        return stateOf(r, []);
      });
    },

    async state(cache, id) {
      const r = await load(cache, id);
      if (!r) throw new PushError(404, `no upload ${id} in cache ${cache} (finished, refused or swept: start again)`);
      return stateOf(r, await held(cache, id));
    },

    async part(cache, id, offset, sha256Hex, body, length) {
      const drain = () => void body.resume();
      if (length === undefined) {
        drain();
        throw new PushError(400, 'a part needs a Content-Length');
      }
      const r = await load(cache, id);
      if (!r) {
        drain();
        throw new PushError(404, `no upload ${id} in cache ${cache} (finished, refused or swept: start again)`);
      }
      if (length === 0 || offset + length > r.narSize) {
        drain();
        await remove(cache, id);
        throw rejected(`part of ${length} bytes at offset ${offset} does not fit a NAR of ${r.narSize} bytes; upload removed`);
      }
      const before = await held(cache, id);
      if (before.some(([at, size]) => at === offset && size === length)) {
        drain(); // held already (an acknowledgement that was lost): nothing to write
        o.onPartAgain?.({ cache, id, storePath: r.storePath, offset, size: length });
        return stateOf(r, before);
      }
      const overlap = before.find(([at, size]) => at < offset + length && offset < at + size);
      if (overlap) {
        drain();
        throw new PushError(409, `part at offset ${offset} overlaps the part held at offset ${overlap[0]} (${overlap[1]} bytes): upload ${id} is at offset ${contiguous(before)}`);
      }
      if ((await o.usedBytes()) + length > o.maxBytes) {
        drain();
        throw tryLater('staging area full, retry later', 30);
      }
      if (o.beforeWrite) {
        try {
          await o.beforeWrite(length);
        } catch (e) {
          drain();
          throw e;
        }
      }
      const got = await writePart(dataOf(cache, id), offset, length, body);
      if (got !== sha256Hex) {
        await remove(cache, id);
        throw rejected(`part at offset ${offset} hashes to ${got}, not the declared ${sha256Hex}; upload removed`);
      }
      const part: Held = [offset, length];
      await writeFile(markerOf(cache, id, part), '');
      wake(`${cache} ${id}`);
      const parts = await held(cache, id);
      if (contiguous(parts) >= r.narSize) return complete(cache, r, part);
      advancePrefix(cache, id, parts);
      o.onPart?.({ cache, id, storePath: r.storePath, offset, size: length });
      return stateOf(r, parts);
    },

    async *follow(cache, id, r, mayEnd, fo = {}) {
      const record = await load(cache, id);
      if (record && (record.narHash !== r.narHash || record.narSize !== r.narSize)) throw new Error(`upload ${id} is of another NAR`);
      const key = `${cache} ${id}`;
      const idleMs = fo.idleMs ?? 600_000;
      let ended = false;
      void mayEnd.then(() => {
        ended = true;
        wake(key);
      });
      // Opened now: when the upload completes, its file is renamed (the staged NAR), and read on from here.
      // Complete already (all parts came before the daemon was ready): its staged NAR, checked whole.
      let completeAlready = false;
      const fh = await open(dataOf(cache, id), 'r').catch(async (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' && (await isStaged(cache, r.narHash, r.narSize))) {
          completeAlready = true;
          return open(stagedNar(cache, r.narHash), 'r');
        }
        throw e.code === 'ENOENT' ? new Error(`no upload ${id} in cache ${cache}`) : e;
      });
      // This follower hashes the whole NAR's bytes as it reads them (fed), in place of the background reads.
      const prefix = completeAlready ? undefined : prefixOf(key);
      if (prefix) prefix.followers++;
      try {
        const buf = Buffer.allocUnsafeSlow(Math.min(1024 * 1024, r.narSize));
        const tailFrom = Math.max(0, r.narSize - FOLLOW_TAIL);
        let at = 0;
        let since = Date.now();
        let told = false;
        for (;;) {
          if (fo.signal?.aborted) throw new Error('stopped');
          let limit: number;
          if (await load(cache, id)) limit = Math.min(tailFrom, contiguous(await held(cache, id)));
          else if (await isStaged(cache, r.narHash, r.narSize)) {
            // Complete: the whole file hashed to NarHash before it was renamed (in this process or another).
            if (!told && !ended && at >= tailFrom) {
              told = true;
              fo.onTail?.();
            }
            if (!ended && at >= tailFrom && (await fo.mayEndElsewhere?.())) ended = true;
            limit = ended ? r.narSize : tailFrom;
          } else throw new Error('the upload was removed');
          if (limit > at) {
            while (at < limit) {
              const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, limit - at), at);
              if (bytesRead === 0) throw new Error(`the upload's file ends at ${at} of ${r.narSize} bytes`);
              const chunk = buf.subarray(0, bytesRead);
              if (prefix) fed(key, at, chunk);
              at += bytesRead;
              yield chunk;
            }
            if (at >= r.narSize) return;
            since = Date.now();
            continue;
          }
          if (Date.now() - since > idleMs) throw new Error(`nothing arrived for ${Math.round(idleMs / 1000)} s`);
          await waitFor(key, FOLLOW_POLL_MS, fo.signal);
        }
      } finally {
        if (prefix) prefix.followers--;
        await fh.close();
      }
    },

    async discardIncomplete(cache, narFile) {
      let removed = false;
      for (const r of await uploads(cache)) {
        if (partsNarFile(r.narHash) === narFile) {
          await remove(cache, r.id);
          removed = true;
        }
      }
      return removed;
    },
  };
}

const randomId = () => randomBytes(16).toString('hex');
