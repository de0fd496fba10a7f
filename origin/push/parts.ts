/**
 * NARs uploaded in parts (`eris push`, shared/push-protocol.ts), in the
 * staging area of their cache beside the stock uploads:
 *
 *   staging/<cache>/upload-<id>.nar    the bytes acknowledged so far (and perhaps a cut part beyond them)
 *   staging/<cache>/upload-<id>.json   what the upload is (store path, NAR hash and size) and its parts
 *
 * A part is streamed to its place in the file while it is hashed; only when it
 * is whole, of the declared size and hash, is it recorded (the record is
 * renamed into place) and acknowledged — so after a crash or a restart the
 * upload resumes at the last acknowledged part, and bytes beyond it are cut
 * off. Parts go in order. The last part completes the upload: the whole NAR
 * must hash to the declared NarHash, then it becomes the staged file
 * `<narHash nix32>.nar` that the narinfo names, and the stock narinfo PUT
 * imports it (service.ts). Anything wrong with the bytes removes the upload.
 * The staging area's bounds apply: bytes (checked before a part is written)
 * and age (an upload no narinfo completes is swept with the other files).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { partsNarFile, type UploadStart, type UploadState } from '../../shared/push-protocol.ts';
import { PushError, rejected, tryLater } from './errors.ts';
import { oneAtATime } from './one-at-a-time.ts';

interface PartRecord {
  offset: number;
  size: number;
  sha256: string;
}

interface UploadRecord extends UploadStart {
  id: string;
  parts: PartRecord[];
}

export interface PartsOptions {
  /** The staging root (staging.ts's `dir`): one directory per cache. */
  dir: string;
  /** The staging area's byte bound (all caches, stock uploads included). */
  maxBytes: number;
  usedBytes: () => Promise<number>;
  /** Called for each part written and acknowledged (logging, tests counting parts). */
  onPart?: (e: { cache: string; id: string; storePath: string; offset: number; size: number }) => void;
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
}

const acknowledged = (r: UploadRecord) => r.parts.reduce((end, p) => Math.max(end, p.offset + p.size), 0);

export function createParts(o: PartsOptions): Parts {
  /** One request at a time per upload in this process. */
  const locked = oneAtATime();
  /** The running SHA-256 of an upload's acknowledged bytes, while this process has seen them all. */
  const running = new Map<string, { hash: Hash; upTo: number }>();

  const dirOf = (cache: string) => join(o.dir, cache);
  const dataOf = (cache: string, id: string) => join(dirOf(cache), `upload-${id}.nar`);
  const recordOf = (cache: string, id: string) => join(dirOf(cache), `upload-${id}.json`);
  const stagedNar = (cache: string, narHash: string) => join(dirOf(cache), partsNarFile(narHash));

  async function load(cache: string, id: string): Promise<UploadRecord | undefined> {
    try {
      const r = JSON.parse(await readFile(recordOf(cache, id), 'utf8')) as UploadRecord;
      return r && r.id === id && Array.isArray(r.parts) ? r : undefined;
    } catch {
      return undefined;
    }
  }

  async function save(cache: string, r: UploadRecord): Promise<void> {
    const tmp = `${recordOf(cache, r.id)}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(r));
    await rename(tmp, recordOf(cache, r.id));
  }

  async function remove(cache: string, id: string): Promise<void> {
    running.delete(`${cache}/${id}`);
    await rm(recordOf(cache, id), { force: true });
    await rm(dataOf(cache, id), { force: true });
  }

  const stateOf = (r: UploadRecord, complete = false): UploadState => ({ id: r.id, offset: complete ? r.narSize : acknowledged(r), narSize: r.narSize, complete });

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

  /** SHA-256 of the first `upTo` bytes of the data file (after a restart, the running hash is gone). */
  async function hashPrefix(file: string, upTo: number): Promise<Hash> {
    const hash = createHash('sha256');
    if (upTo === 0) return hash;
    await pipeline(createReadStream(file, { start: 0, end: upTo - 1, highWaterMark: 1024 * 1024 }), new Writable({
      write(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        cb();
      },
    }));
    return hash;
  }

  return {
    async begin(cache, start) {
      return locked(`begin ${cache} ${start.narHash}`, async () => {
        if (await isStaged(cache, start.narHash, start.narSize)) return { id: '0'.repeat(32), offset: start.narSize, narSize: start.narSize, complete: true };
        const same = (await uploads(cache)).filter((r) => r.narHash === start.narHash && r.narSize === start.narSize);
        // Resume the furthest one (two pushers of the same path share it).
        same.sort((a, b) => acknowledged(b) - acknowledged(a));
        if (same[0]) return stateOf(same[0]);
        if (start.narSize > o.maxBytes) throw new PushError(413, `NAR of ${start.narSize} bytes is larger than the staging area (${o.maxBytes} bytes, push_staging_max_bytes)`);
        const r: UploadRecord = { id: randomBytes(16).toString('hex'), ...start, parts: [] };
        await mkdir(dirOf(cache), { recursive: true });
        await writeFile(dataOf(cache, r.id), '');
        await save(cache, r);
        return stateOf(r);
      });
    },

    async state(cache, id) {
      const r = await load(cache, id);
      if (!r) throw new PushError(404, `no upload ${id} in cache ${cache} (finished, refused or swept: start again)`);
      return stateOf(r);
    },

    async part(cache, id, offset, sha256Hex, body, length) {
      const drain = () => void body.resume();
      if (length === undefined) {
        drain();
        throw new PushError(400, 'a part needs a Content-Length');
      }
      return locked(`upload ${cache} ${id}`, async () => {
        const r = await load(cache, id);
        if (!r) {
          drain();
          throw new PushError(404, `no upload ${id} in cache ${cache} (finished, refused or swept: start again)`);
        }
        const at = acknowledged(r);
        if (offset !== at) {
          drain();
          throw new PushError(409, `part at offset ${offset} is out of order: upload ${id} is at offset ${at}`);
        }
        if (length === 0 || offset + length > r.narSize) {
          drain();
          await remove(cache, id);
          throw rejected(`part of ${length} bytes at offset ${offset} does not fit a NAR of ${r.narSize} bytes; upload removed`);
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
        const data = dataOf(cache, id);
        // Bytes beyond the acknowledged offset are a part that was cut (the process died after writing it).
        if ((await stat(data)).size !== at) await truncate(data, at);
        const key = `${cache}/${id}`;
        let whole = running.get(key);
        if (!whole || whole.upTo !== at) whole = { hash: await hashPrefix(data, at), upTo: at };
        const nar = whole.hash.copy();
        const partHash = createHash('sha256');
        let size = 0;
        try {
          const counter = new Transform({
            transform(chunk: Buffer, _e, cb) {
              size += chunk.length;
              if (size > length) return cb(rejected('part longer than its Content-Length'));
              partHash.update(chunk);
              nar.update(chunk);
              cb(null, chunk);
            },
          });
          // Into place after the acknowledged bytes; WriteStream gathers buffered chunks into one writev.
          await pipeline(body, counter, createWriteStream(data, { flags: 'r+', start: at, highWaterMark: 1024 * 1024 }));
        } catch (e) {
          await truncate(data, at).catch(() => {});
          if (e instanceof PushError) throw e;
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw tryLater('staging disk full, retry later', 30);
          throw new PushError(400, `part did not arrive whole (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
        if (size !== length) {
          await truncate(data, at);
          throw new PushError(400, `part ended after ${size} of ${length} bytes`);
        }
        const got = partHash.digest('hex');
        if (got !== sha256Hex) {
          await remove(cache, id);
          throw rejected(`part at offset ${offset} hashes to ${got}, not the declared ${sha256Hex}; upload removed`);
        }
        r.parts.push({ offset, size, sha256: got });
        const end = offset + size;
        if (end < r.narSize) {
          await save(cache, r);
          running.set(key, { hash: nar, upTo: end });
          o.onPart?.({ cache, id, storePath: r.storePath, offset, size });
          return stateOf(r);
        }
        // The last part: the whole NAR, checked before it is staged for its narinfo.
        running.delete(key);
        const narHash = formatSha256Nix32(nar.digest());
        if (narHash !== r.narHash) {
          await remove(cache, id);
          throw rejected(`the uploaded NAR hashes to ${narHash}, not the declared ${r.narHash} (parts of another NAR?); upload removed`);
        }
        await rename(data, stagedNar(cache, r.narHash));
        await rm(recordOf(cache, id), { force: true });
        o.onPart?.({ cache, id, storePath: r.storePath, offset, size });
        return stateOf(r, true);
      });
    },

    async discardIncomplete(cache, narFile) {
      let removed = false;
      for (const r of await uploads(cache)) {
        if (partsNarFile(r.narHash) === narFile) {
          await locked(`upload ${cache} ${r.id}`, () => remove(cache, r.id));
          removed = true;
        }
      }
      return removed;
    },
  };
}
