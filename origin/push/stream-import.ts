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
 */
import type { NarInfo } from '../../shared/narinfo.ts';
import type { Importer } from './import.ts';
import type { Parts } from './parts.ts';

/** Streams at once in one process (each a daemon connection, a lock on its path, a partly written path). */
export const MAX_STREAMS = 2;
/** Smaller NARs are imported after their narinfo: a connection of their own would cost more than it saves. */
export const MIN_STREAM_BYTES = 1024 * 1024;

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
}

export interface StreamImportsOptions {
  importer: Pick<Importer, 'importStream'>;
  follow: Parts['follow'];
  /** Stream events: started, dropped (why), waiting for its narinfo. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /** Idle limit of a stream (default parts.ts's, 10 minutes). */
  idleMs?: number;
}

export function createStreamImports(o: StreamImportsOptions): StreamImports {
  const running = new Map<string, StreamedImport>();

  return {
    start(cache, id, info) {
      if (running.size >= MAX_STREAMS || running.has(info.storePath)) return false;
      let letGo!: () => void;
      const mayEnd = new Promise<void>((resolve) => (letGo = resolve));
      const stop = new AbortController();
      const stream = o.importer.importStream(info, () => o.follow(cache, id, mayEnd, {
        signal: stop.signal, idleMs: o.idleMs,
        onTail: () => o.log?.('push: streamed import waits for its narinfo', { cache, id, storePath: info.storePath }),
      }));
      const close = () => {
        stop.abort();
        stream.close();
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
      stream.done.catch((e: Error) => {
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
  };
}
