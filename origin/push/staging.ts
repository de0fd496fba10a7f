/**
 * The bounded staging area: files a pusher uploads before the narinfo that
 * names them arrives. One directory per cache; every file is streamed to a
 * temp name while it is hashed and counted, then renamed into place, so a
 * staged file is always complete. Bounds: total bytes (a PUT that would not
 * fit is 413 when it could never fit, else 503 + Retry-After) and age (files
 * of an abandoned push are swept after `ttlMs`).
 *
 * A small upload (most paths of a closure, whose client waits for each answer before it sends the next
 * path) is read into memory and written with a few synchronous calls: on a loaded box every trip through
 * libuv's thread pool is latency the pusher waits for. The directory scans are synchronous too (a stat
 * takes microseconds; the staging area holds only uploads whose narinfo has not come yet).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { PushError, tryLater } from './errors.ts';
import { hashingMeter } from './meter.ts';

export interface StagedFile {
  path: string;
  size: number;
  /** Raw SHA-256 of the bytes. */
  sha256: Buffer;
}

export interface Staging {
  readonly dir: string;
  /**
   * Streams `body` into the staging area of `cache` as `name`; `declaredLength` (Content-Length) is
   * checked against the bounds before a byte is written. Rejects with PushError when over a bound or
   * when the body ends early (nothing is left behind then).
   */
  receive(cache: string, name: string, body: Readable, declaredLength?: number): Promise<StagedFile>;
  /** A complete staged file, if there is one. */
  find(cache: string, name: string): Promise<{ path: string; size: number } | undefined>;
  remove(path: string): Promise<void>;
  /** Bytes on disk now (complete and partial files of every process). */
  usedBytes(): Promise<number>;
  /** Removes files older than the time bound; returns how many. */
  sweep(now?: number): Promise<number>;
  close(): void;
}

export interface StagingOptions {
  dir: string;
  maxBytes: number;
  ttlMs: number;
  /** How often to sweep; 0 = only when sweep() is called. */
  sweepEveryMs?: number;
  onSweep?: (removed: number) => void;
  /** Called with the bytes an upload declares before anything is written; throws to refuse it (the disk guard). */
  beforeWrite?: (bytes: number) => Promise<void>;
}

const TMP_PREFIX = '.part-';

/** Uploads up to this size (declared by Content-Length) are received in memory. */
export const SMALL_UPLOAD_BYTES = 256 * 1024;

/**
 * Exactly `length` bytes of `body` in one buffer (400 when it ends early, is cut or runs longer; `what`
 * names the body in the lines of the first two): a small upload here, a batch in parts-routes.ts.
 */
export async function readExactly(body: Readable, length: number, what = 'upload'): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  let n = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (n + chunk.length > length) {
        body.destroy();
        throw new PushError(400, 'body longer than its Content-Length');
      }
      chunk.copy(out, n);
      n += chunk.length;
    }
  } catch (e) {
    if (e instanceof PushError) throw e;
    throw new PushError(400, `${what} did not complete (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (n !== length) throw new PushError(400, `${what} ended after ${n} of ${length} bytes`);
  return out;
}

/** Writes a small upload under a temp name and renames it into place (a staged file is always complete). */
function writeSmall(dir: string, final: string, bytes: Buffer): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
  try {
    writeFileSync(tmp, bytes, { flag: 'wx' });
    renameSync(tmp, final);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {}
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw tryLater('staging disk full, retry later', 30);
    throw e;
  }
}

/** A file name we create on disk: names come from parseUploadPath (nix32 and dots), never with a slash. */
function safeName(name: string): string {
  if (!/^[A-Za-z0-9+\-._?=!:]+$/.test(name) || name.startsWith('.')) throw new Error(`unsafe staging name ${JSON.stringify(name)}`);
  return name;
}

export function createStaging(o: StagingOptions): Staging {
  const root = join(o.dir, 'staging');
  /** Bytes this process has promised to uploads still arriving, beyond what they have written. */
  let reserved = 0;

  function filesUnder(): { path: string; size: number; mtimeMs: number }[] {
    const out: { path: string; size: number; mtimeMs: number }[] = [];
    let caches: string[];
    try {
      caches = readdirSync(root);
    } catch {
      return out;
    }
    for (const cache of caches) {
      let names: string[];
      try {
        names = readdirSync(join(root, cache));
      } catch {
        continue;
      }
      for (const name of names) {
        const st = statSync(join(root, cache, name), { throwIfNoEntry: false });
        if (st?.isFile()) out.push({ path: join(root, cache, name), size: st.size, mtimeMs: st.mtimeMs });
      }
    }
    return out;
  }

  function usedBytes(): number {
    return filesUnder().reduce((a, f) => a + f.size, 0);
  }

  const timer = o.sweepEveryMs ? setInterval(() => void api.sweep().then((n) => n && o.onSweep?.(n), () => {}), o.sweepEveryMs) : undefined;
  timer?.unref();

  const api: Staging = {
    dir: root,
    async receive(cache, name, body, declaredLength) {
      const dir = join(root, safeName(cache));
      const final = join(dir, safeName(name));
      if (declaredLength !== undefined && declaredLength > o.maxBytes) {
        body.resume();
        throw new PushError(413, `upload of ${declaredLength} bytes is larger than the staging area (${o.maxBytes} bytes); push it over ssh, then eris publish`);
      }
      const claim = declaredLength ?? 0;
      if (usedBytes() + reserved + claim > o.maxBytes) {
        body.resume();
        throw tryLater('staging area full, retry later', 30);
      }
      if (o.beforeWrite) {
        try {
          await o.beforeWrite(claim);
        } catch (e) {
          // Read (and drop) the body before answering: a proxy still sending it would otherwise see the
          // connection close under its upload and answer its client with an error of its own.
          body.resume();
          await finished(body).catch(() => {});
          throw e;
        }
      }
      reserved += claim;
      if (declaredLength !== undefined && declaredLength <= SMALL_UPLOAD_BYTES) {
        try {
          const bytes = await readExactly(body, declaredLength);
          writeSmall(dir, final, bytes);
          return { path: final, size: bytes.length, sha256: createHash('sha256').update(bytes).digest() };
        } finally {
          reserved -= claim;
        }
      }
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
      // A declared length is the bound (one byte more is an error); without one, the staging area's size.
      const meter = declaredLength !== undefined
        ? hashingMeter(declaredLength, () => new PushError(400, 'body longer than its Content-Length'))
        : hashingMeter(o.maxBytes, () => new PushError(413, `upload is larger than the staging area (${o.maxBytes} bytes); push it over ssh, then eris publish`));
      try {
        await pipeline(body, meter.stream, createWriteStream(tmp, { flags: 'wx' }));
        if (declaredLength !== undefined && meter.size() !== declaredLength) throw new PushError(400, `upload ended after ${meter.size()} of ${declaredLength} bytes`);
        await rename(tmp, final);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        if (e instanceof PushError) throw e;
        if (meter.over) throw e;
        // The client went away mid-body, or the disk failed: either way nothing stays.
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOSPC') throw tryLater('staging disk full, retry later', 30);
        throw new PushError(400, `upload did not complete (${code ?? (e as Error).message})`);
      } finally {
        reserved -= claim;
      }
      return { path: final, size: meter.size(), sha256: meter.sha256() };
    },
    async find(cache, name) {
      const path = join(root, safeName(cache), safeName(name));
      const st = statSync(path, { throwIfNoEntry: false });
      return st?.isFile() ? { path, size: st.size } : undefined;
    },
    async remove(path) {
      await rm(path, { force: true });
    },
    usedBytes: async () => usedBytes(),
    async sweep(now = Date.now()) {
      let removed = 0;
      for (const f of filesUnder()) {
        if (now - f.mtimeMs > o.ttlMs) {
          await unlink(f.path).catch(() => {});
          removed++;
        }
      }
      return removed;
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
  return api;
}
