/**
 * Imports that follow their upload: a large NAR sent in parts (`eris push`) is fed to the Nix daemon while
 * its parts arrive, instead of after the narinfo, so the daemon unpacks and hashes it during the upload and
 * the narinfo waits only for the end (issue #23: the import was 1.4–1.9 s of a 256 MiB push, after the
 * upload). The client gives the narinfo with the upload's start (shared/push-protocol.ts); the push service
 * checks and signs it then, and starts one here.
 *
 * What does not change:
 * - the path becomes valid only once its narinfo PUT was accepted with every check a narinfo has: the daemon
 *   gets the NAR's last bytes (parts.ts's FOLLOW_TAIL) only then, and only once the whole NAR hashed to its
 *   NarHash here; Nix checks NarHash, NarSize and the signature again itself;
 * - anything else ends the stream (a part refused, the upload removed or swept, nothing arriving for
 *   10 minutes, another narinfo than the one given at the start): its connection closes and the daemon drops
 *   what it had, nothing valid; the narinfo PUT then imports the staged NAR as before;
 * - the daemon's connection is one of its own, not the pool's: a slow upload holds it (and Nix's lock on the
 *   path) without keeping other imports waiting. At most MAX_STREAMS at once per process; past that, or for a
 *   NAR under MIN_STREAM_BYTES, a push imports after its narinfo as before.
 *
 * With `workers > 1` the narinfo may reach another process than the stream's (whose own import would wait on
 * the stream's lock on the path). Files in the cache's staging directory hand it over:
 *   <narhash>.nar.stream   the stream's process id (and an id of its own), while a stream follows that NAR;
 *                          touched every MARKER_TOUCH_MS (a dead process's is removed by the next narinfo)
 *   <narhash>.nar.go       written by the process the narinfo reached, once it passed its checks: the signed
 *                          narinfo; the stream lets its last bytes go when it is the one it was given, and that
 *                          process waits for the path to be valid (or for the stream to end: then it imports
 *                          itself), and removes the file once the path has its GC root
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { renderNarInfo, type NarInfo } from '../../shared/narinfo.ts';
import { partsNarFile } from '../../shared/push-protocol.ts';
import type { Importer } from './import.ts';
import type { Parts } from './parts.ts';

/** Streams at once in one process (each a daemon connection, a lock on its path, a partly written path). */
export const MAX_STREAMS = 2;
/** Smaller NARs are imported after their narinfo: a connection of their own would cost more than it saves. */
export const MIN_STREAM_BYTES = 1024 * 1024;
/** A stream touches its marker this often; another process takes a marker untouched for MARKER_STALE_MS as a dead one's. */
const MARKER_TOUCH_MS = 5_000;
const MARKER_STALE_MS = 30_000;

export interface StreamedImport {
  /** The signed narinfo the daemon was given at the start. */
  readonly info: NarInfo;
  /** Lets the last bytes go (the narinfo was accepted); resolves once the path is valid, or rejects (PushError). */
  finish(): Promise<void>;
  /** Ends it: abandons the import when unfinished; after `finish`, lets the daemon's temporary root go. */
  close(): void;
}

export interface StreamImports {
  /** Starts feeding the daemon the upload `id` of `cache` for the path of `info` (signed); false when not (too many). */
  start(cache: string, id: string, info: NarInfo): boolean;
  /** The stream running for this store path, handed over to its narinfo PUT (removed from here). */
  take(storePath: string): StreamedImport | undefined;
  /** True while a stream runs for this store path. */
  has(storePath: string): boolean;
  /**
   * For a narinfo whose path has no stream here: when another process's stream follows its NAR, hands it the
   * narinfo (checked and signed: `signed`) and resolves to true once the path is valid; false when there is
   * no such stream or it ended without making the path valid. The stream keeps its temporary root on the
   * path until `rooted` settles.
   */
  handOff(cache: string, signed: NarInfo, rooted: Promise<unknown>): Promise<boolean>;
}

export interface StreamImportsOptions {
  importer: Pick<Importer, 'importStream'>;
  follow: Parts['follow'];
  /** Stream events: started, dropped (why), waiting for its narinfo. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /** Idle limit of a stream (default parts.ts's, 10 minutes). */
  idleMs?: number;
  /** The staging root (parts.ts's): where the files that hand a narinfo to another process's stream are. */
  dir?: string;
  /** Whether a path is valid in the store now (handOff waits for it). */
  isValid?: (storePath: string) => Promise<boolean>;
}

/** True while process `pid` runs (EPERM: it does, as another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function createStreamImports(o: StreamImportsOptions): StreamImports {
  const running = new Map<string, StreamedImport>();
  /** Who owns a stream's marker: this process's id, and this instance's (tests run two in one process). */
  const self = `${process.pid} ${randomBytes(8).toString('hex')}`;
  const fileOf = (cache: string, narHash: string, what: 'stream' | 'go') => o.dir && join(o.dir, cache, `${partsNarFile(narHash)}.${what}`);
  /** True once another process accepted this very narinfo (`info`) for the NAR: asked every poll while the tail waits. */
  const goneAhead = (cache: string, info: NarInfo) => {
    const go = fileOf(cache, info.narHash, 'go');
    const text = renderNarInfo(info);
    return async () => {
      try {
        return go !== undefined && readFileSync(go, 'utf8') === text;
      } catch {
        return false;
      }
    };
  };

  return {
    start(cache, id, info) {
      if (running.size >= MAX_STREAMS || running.has(info.storePath)) return false;
      let letGo!: () => void;
      const mayEnd = new Promise<void>((resolve) => (letGo = resolve));
      const stop = new AbortController();
      const stream = o.importer.importStream(info, () => o.follow(cache, id, info, mayEnd, {
        signal: stop.signal, idleMs: o.idleMs, mayEndElsewhere: o.dir ? goneAhead(cache, info) : undefined,
        onTail: () => o.log?.('push: streamed import waits for its narinfo', { cache, id, storePath: info.storePath }),
      }));
      const marker = fileOf(cache, info.narHash, 'stream');
      try {
        if (marker) writeFileSync(marker, self);
      } catch {} // the staging directory is gone: nothing to tell the other processes
      // Touched while the stream lives: a marker older than MARKER_STALE_MS is one a dead process left.
      const touch = marker ? setInterval(() => {
        try {
          const now = new Date();
          utimesSync(marker, now, now);
        } catch {}
      }, MARKER_TOUCH_MS) : undefined;
      touch?.unref();
      const close = () => {
        stop.abort();
        stream.close();
        clearInterval(touch);
        if (marker) rmSync(marker, { force: true });
      };
      const entry: StreamedImport = {
        info,
        finish: () => {
          letGo();
          return stream.done;
        },
        close,
      };
      running.set(info.storePath, entry);
      o.log?.('push: streamed import started', { cache, id, storePath: info.storePath, narSize: info.narSize });
      stream.done.then(async () => {
        if (running.get(info.storePath) !== entry) return; // its narinfo took it here
        // Done without a narinfo here: another process's narinfo let it go. Its temporary root stays until that
        // process rooted the path (it then removes the go file), or a minute.
        running.delete(info.storePath);
        o.log?.('push: streamed import finished for another process', { cache, id, storePath: info.storePath });
        const go = fileOf(cache, info.narHash, 'go');
        for (let waited = 0; go && existsSync(go) && waited < 60_000; waited += 50) await sleep(50);
        close();
      }, (e: Error) => {
        // Failed before its narinfo took it: dropped, so that the narinfo imports the staged NAR instead.
        if (running.get(info.storePath) === entry) {
          running.delete(info.storePath);
          close();
          o.log?.('push: streamed import dropped', { cache, id, storePath: info.storePath, reason: e.message });
        }
      });
      return true;
    },
    take(storePath) {
      const s = running.get(storePath);
      running.delete(storePath);
      return s;
    },
    has: (storePath) => running.has(storePath),
    async handOff(cache, signed, rooted) {
      const marker = fileOf(cache, signed.narHash, 'stream');
      const go = fileOf(cache, signed.narHash, 'go');
      if (!marker || !go || !o.isValid) return false;
      let owner: string;
      try {
        owner = readFileSync(marker, 'utf8');
      } catch {
        return false;
      }
      if (owner === self) return false;
      const pid = Number(owner.split(' ')[0]);
      const stale = () => !alive(pid) || Date.now() - (statSync(marker, { throwIfNoEntry: false })?.mtimeMs ?? 0) > MARKER_STALE_MS;
      if (!Number.isSafeInteger(pid) || pid <= 0 || stale()) {
        rmSync(marker, { force: true }); // left by a process that died (killed, restarted): no stream follows
        return false;
      }
      writeFileSync(go, renderNarInfo(signed));
      o.log?.('push: narinfo handed to the streamed import of another process', { cache, storePath: signed.storePath, pid });
      let valid = false;
      try {
        for (;;) {
          if ((valid = await o.isValid(signed.storePath))) return true;
          if (!existsSync(marker) || stale()) return (valid = await o.isValid(signed.storePath));
          await sleep(20);
        }
      } finally {
        if (valid) void rooted.catch(() => {}).finally(() => rmSync(go, { force: true }));
        else rmSync(go, { force: true });
      }
    },
  };
}
