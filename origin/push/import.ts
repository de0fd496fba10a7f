/**
 * Imports verified paths into the live store through Nix itself, over a few
 * long-lived Nix daemon connections (origin/nix-daemon): no process per path.
 * The daemon checks NarHash and NarSize again, checks the signature against
 * the keys *it* trusts (unless told not to and this user is trusted), takes the
 * path's lock, and registers the path only once it is complete — a cut or
 * failed import leaves nothing valid.
 *
 * Group commit: while the connections are busy, arriving paths queue; the
 * next free connection takes all of them in one AddMultipleToStore (each
 * caller still learns only when its own path is valid). If that batch fails,
 * the paths it did not make valid are retried one by one, so each caller
 * gets its own path's verdict.
 *
 * Where imports go (push_store):
 *   "auto"        the box's store: our own `nix-daemon --stdio` when this user may write it, else the daemon socket
 *   "daemon"      the daemon socket (NIX_DAEMON_SOCKET_PATH, or under NIX_STATE_DIR, as Nix finds it)
 *   "unix:///…"   the daemon listening at that socket
 *   "/a/root"     a chroot store under that root, through `nix-daemon --stdio --store /a/root`
 * Trust: the box's daemon checks signatures against its nix.conf's
 * trusted-public-keys, so the origin needs no trusted-user; a daemon we start
 * for a chroot store is given the caches' keys. `trust = "no-check-sigs"`
 * asks the daemon to skip the check (it does so only for a trusted-user).
 */
import { Readable } from 'node:stream';
import { bytesToHex, formatSha256Nix32, parseSha256 } from '../../shared/hash.ts';
import type { NarInfo } from '../../shared/narinfo.ts';
import { narFileOfUrl } from '../../shared/upload.ts';
import { connectDaemon, DaemonConnectionError, DaemonError, daemonTarget, describeTarget, type DaemonConnection, type NarToAdd } from '../nix-daemon/index.ts';
import { createDaemonPool, type DaemonPool } from '../nix-daemon/pool.ts';
import { narChunks } from './decompress.ts';
import { PushError, rejected, tryLater } from './errors.ts';
import { noCheckSigsAdvice, untrustedKeyAdvice } from './trust-advice.ts';

export type PushTrust = 'signature' | 'no-check-sigs';

export interface ImporterOptions {
  /** Where imports go: "auto", "daemon", "unix:///socket" or a chroot store root. */
  storeUri: string;
  storeDir: string;
  trust: PushTrust;
  /** The caches' public keys: given to a daemon we start for a chroot store, and named when the store refuses one. */
  trustedKeys: string[];
  /** Connections to the daemon (imports at once); default 2. */
  connections?: number;
  /** Paths per AddMultipleToStore; default 64. */
  maxBatch?: number;
  /** A batch taking longer than this fails with 503 (its connection is closed); default 10 minutes. */
  timeoutMs?: number;
  /** For tests: the pool to use instead of one built from storeUri. */
  pool?: DaemonPool;
  /** For tests: how importStream opens its connection (default: a new connection to storeUri's daemon). */
  openStream?: () => Promise<DaemonConnection>;
}

export interface Importer {
  /**
   * Adds the path of `info` (already verified, signed as it should be stored) from the NAR file at `nar`
   * (compressed as its URL says), or from the NAR itself when the caller already holds it. Resolves once it is valid.
   */
  importPath(info: NarInfo, nar: string | Buffer): Promise<void>;
  /**
   * Adds the path of `info` from NAR bytes that are still arriving (`nar`), on a daemon connection of its own
   * (so the shared ones stay free for other imports while it waits for the bytes). `done` settles with the
   * import (a PushError, as importPath's); `close()` ends the connection: before `done`, that abandons the
   * import (nothing valid); after it, the temporary root the daemon took on the path goes with it.
   */
  importStream(info: NarInfo, nar: () => AsyncIterable<Buffer>): { done: Promise<void>; close(): void };
  close(): void;
}

/** Directory store URIs other than / are chroot stores, reached through a daemon of our own that we give the keys to check. */
export const isLocalRoot = (uri: string) => uri.startsWith('/') && uri !== '/';

interface Job {
  item: NarToAdd;
  resolve: () => void;
  reject: (e: Error) => void;
}

export function createImporter(o: ImporterOptions): Importer {
  const options: Record<string, string> = {};
  if (isLocalRoot(o.storeUri) && o.trust === 'signature') {
    options['trusted-public-keys'] = o.trustedKeys.join(' ');
    options['require-sigs'] = 'true';
  }
  const target = daemonTarget(o.storeUri, options);
  // One connection opened ahead: the first import after a quiet minute does not wait for nix-daemon to start.
  const pool = o.pool ?? createDaemonPool(target, { size: o.connections ?? 2, ready: 1 });
  const maxBatch = o.maxBatch ?? 64;
  const timeoutMs = o.timeoutMs ?? 600_000;
  const dontCheckSigs = o.trust === 'no-check-sigs';
  const pending: Job[] = [];
  let running = 0;

  function toDaemonInfo(info: NarInfo, source: string | Buffer | (() => AsyncIterable<Buffer>)): NarToAdd {
    const nar = narFileOfUrl(info.url, info.compression);
    if (typeof nar === 'string') throw rejected(nar);
    const full = (base: string) => `${o.storeDir}/${base}`;
    const want = { narSize: info.narSize, narHash: formatSha256Nix32(parseSha256(info.narHash)) };
    return {
      info: {
        path: info.storePath,
        deriver: info.deriver ? full(info.deriver) : '',
        narHash: bytesToHex(parseSha256(info.narHash)),
        references: info.references.map(full),
        registrationTime: 0,
        narSize: info.narSize,
        ultimate: false,
        sigs: info.sigs,
        ca: info.ca ?? '',
      },
      nar: typeof source === 'string' ? () => narChunks(source, nar.compression, want) : typeof source === 'function' ? source : () => Readable.from([source]),
    };
  }

  /** Nix's reason, in our terms: the pusher's fault (4xx), temporary (503), or the box's set-up (500, with the fix). */
  function importFailure(e: unknown, item: NarToAdd): PushError {
    if (e instanceof PushError) return e;
    // The NAR file itself was wrong (we stopped feeding the daemon): our reason, not the daemon's echo of it.
    if (e instanceof DaemonError && e.cause instanceof PushError) return e.cause;
    const message = (e as Error).message ?? String(e);
    if (e instanceof DaemonConnectionError) return tryLater(`store unavailable: ${message}`);
    if (/lacks a valid signature/.test(message)) {
      if (dontCheckSigs) return new PushError(500, `the store refused ${item.info.path}: ${noCheckSigsAdvice(describeTarget(target))}`);
      const names = new Set(item.info.sigs.map((s) => s.split(':')[0]));
      const key = o.trustedKeys.find((k) => names.has(k.split(':')[0])) ?? o.trustedKeys[0] ?? 'the cache key';
      return new PushError(500, `the store refused ${item.info.path}: it does not trust the cache's key; ${untrustedKeyAdvice(key)}`);
    }
    if (/is not valid/.test(message)) return rejected(`missing reference: ${message}`);
    if (/hash mismatch|size mismatch|NarSize|NAR/i.test(message)) return rejected(`the store refused the NAR: ${message.split('\n')[0]}`);
    if (/database is locked|No space left|disk quota/i.test(message)) return tryLater(`store unavailable: ${message}`);
    return new PushError(500, `import failed: ${message.split('\n')[0]}`);
  }

  /** One connection's turn: the batch in one operation, or one by one; each job settled with its own path's fate. */
  async function runBatch(conn: DaemonConnection, jobs: Job[]): Promise<void> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, timeoutMs);
    const settle = (job: Job, e?: unknown) => {
      if (e === undefined) job.resolve();
      else job.reject(timedOut ? tryLater(`import timed out after ${Math.round(timeoutMs / 1000)} s`) : importFailure(e, job.item));
    };
    try {
      let left = jobs;
      if (jobs.length > 1 && conn.canAddMultiple) {
        try {
          await conn.addMultipleToStore(jobs.map((j) => j.item), { dontCheckSigs });
          for (const j of jobs) settle(j);
          return;
        } catch (e) {
          if (!(e instanceof DaemonError)) throw e;
          // Which ones made it? The rest are tried alone, for their own verdicts.
          const valid = new Set(await conn.queryValidPaths(jobs.map((j) => j.item.info.path)));
          left = [];
          for (const j of jobs) (valid.has(j.item.info.path) ? settle(j) : left.push(j));
        }
      }
      for (const j of left) {
        try {
          await conn.addToStoreNar(j.item, { dontCheckSigs });
          settle(j);
        } catch (e) {
          if (!(e instanceof DaemonError)) throw e;
          settle(j, e);
        }
      }
    } catch (e) {
      // The connection broke: every job not settled yet fails (a later PUT retries it on a fresh connection).
      for (const j of jobs) settle(j, e);
    } finally {
      clearTimeout(timer);
    }
  }

  function pump(): void {
    while (pending.length && running < pool.size) {
      running++;
      pool.use(async (conn) => {
        // Taken when a connection is ours, so everything that queued meanwhile goes together.
        const jobs = pending.splice(0, maxBatch);
        if (jobs.length) await runBatch(conn, jobs);
      }).catch((e) => {
        // Could not connect: fail what is queued now (the PUTs answer 503 and Nix retries them).
        for (const j of pending.splice(0)) j.reject(tryLater(`store unavailable: ${(e as Error).message}`));
      }).finally(() => {
        running--;
        pump();
      });
    }
  }

  return {
    importPath(info, nar) {
      return new Promise<void>((resolve, reject) => {
        pending.push({ item: toDaemonInfo(info, nar), resolve, reject });
        pump();
      });
    },
    importStream(info, nar) {
      let conn: DaemonConnection | undefined;
      let closed = false;
      const item = toDaemonInfo(info, nar);
      const done = (async () => {
        try {
          conn = await (o.openStream ?? (() => connectDaemon(target)))();
        } catch (e) {
          throw tryLater(`store unavailable: ${(e as Error).message}`);
        }
        if (closed) conn.close();
        try {
          await conn.addToStoreNar(item, { dontCheckSigs });
        } catch (e) {
          throw importFailure(e, item);
        }
      })();
      done.catch(() => {});
      return {
        done,
        close() {
          closed = true;
          conn?.close();
        },
      };
    },
    close: () => pool.close(),
  };
}
