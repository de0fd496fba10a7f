/**
 * Pushed NAR files kept after the import, so the pusher — whose Nix cached
 * the narinfo it uploaded, `URL: nar/<filehash>.nar.xz` — can read back the
 * same bytes. `files/<cache>/<file>` plus `<file>.json` (which path, NAR hash,
 * compression). Bounded: past `maxBytes` the oldest files go, their small
 * records stay, and the route then compresses the path afresh (a stable
 * equivalent: same compression, same NAR).
 *
 * Records are small and a push waits for them path after path: they are read and written with
 * synchronous calls (microseconds each), not a round trip through libuv's thread pool per call.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { UploadCompression } from '../../shared/upload.ts';

export interface KeptRecord {
  /** Every pushed path whose NAR this file is (identical contents make identical files). */
  storePaths: string[];
  narHash: string;
  narSize: number;
  compression: UploadCompression;
  fileSize: number;
}

export interface KeptFiles {
  /** Moves `from` (a verified upload; absent: already kept) into the kept files of `cache` and records what it holds. */
  keep(cache: string, file: string, from: string | undefined, record: Omit<KeptRecord, 'storePaths'> & { storePath: string }): Promise<void>;
  /** The record of an uploaded file and, while it is still kept, its path. */
  find(cache: string, file: string): Promise<{ record: KeptRecord; path?: string } | undefined>;
}

export function createKeptFiles(o: { dir: string; maxBytes: number; onScan?: () => void }): KeptFiles {
  const root = join(o.dir, 'files');

  // A full scan (a stat per kept file) only when this process's estimate of the total may pass maxBytes,
  // or once a minute (other worker processes keep files too): not on every push (a 1001-path push made that
  // half a million stats). One scan at a time: the keeps that arrive while it runs (a batch's paths, many at
  // once) add to the estimate and go on; before, each of them started a scan of its own once the minute was
  // up (a 1001-path push after another took 107 s instead of 4 s).
  let estimate = Number.POSITIVE_INFINITY;
  let scannedAt = 0;
  let scanning: Promise<void> | undefined;
  let addedWhileScanning = 0;
  async function maybeEvict(added: number) {
    if (scanning) {
      addedWhileScanning += added;
      return;
    }
    estimate += added;
    if (estimate <= o.maxBytes && Date.now() - scannedAt < 60_000) return;
    scannedAt = Date.now();
    addedWhileScanning = 0;
    scanning = evict().then((left) => {
      estimate = left + addedWhileScanning;
    }).finally(() => {
      scanning = undefined;
    });
    await scanning;
  }

  /** Removes the oldest files past maxBytes; returns the bytes left. */
  async function evict(): Promise<number> {
    o.onScan?.();
    const files: { path: string; size: number; mtimeMs: number }[] = [];
    for (const cache of await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(join(root, cache)).catch(() => [] as string[])) {
        if (name.endsWith('.json') || name.startsWith('.')) continue;
        const st = await stat(join(root, cache, name)).catch(() => undefined);
        if (st?.isFile()) files.push({ path: join(root, cache, name), size: st.size, mtimeMs: st.mtimeMs });
      }
    }
    let total = files.reduce((a, f) => a + f.size, 0);
    files.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of files) {
      if (total <= o.maxBytes) break;
      await unlink(f.path).catch(() => {});
      total -= f.size;
    }
    return total;
  }

  return {
    async keep(cache, file, from, { storePath, ...rest }) {
      const dir = join(root, cache);
      mkdirSync(dir, { recursive: true });
      const old = await this.find(cache, file);
      const storePaths = [...new Set([...(old && old.record.narHash === rest.narHash ? old.record.storePaths : []), storePath])].sort();
      const tmpJson = join(dir, `.${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
      writeFileSync(tmpJson, JSON.stringify({ ...rest, storePaths } satisfies KeptRecord));
      renameSync(tmpJson, join(dir, `${file}.json`));
      if (from) renameSync(from, join(dir, file));
      await maybeEvict(from ? rest.fileSize : 0);
    },
    async find(cache, file) {
      const dir = join(root, cache);
      let record: KeptRecord;
      try {
        record = JSON.parse(readFileSync(join(dir, `${file}.json`), 'utf8')) as KeptRecord;
        if (!Array.isArray(record.storePaths)) return undefined;
      } catch {
        return undefined;
      }
      const st = statSync(join(dir, file), { throwIfNoEntry: false });
      return st?.isFile() && st.size === record.fileSize ? { record, path: join(dir, file) } : { record };
    },
  };
}
