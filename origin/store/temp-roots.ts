/**
 * GC-safe serving: while a NAR streams (or a push imports), Nix's garbage
 * collector must not delete the path under it. Nix's own answer is a temporary
 * root: a process lists the paths it uses in `<state>/temproots/<pid>`, holds
 * that file locked while it lives, and talks to a running collector over
 * `<state>/gc-socket/socket` (Nix 2.8 `LocalStore::addTempRoot`). The roots of
 * a process last until it exits, so we take them in a Nix daemon worker: one
 * daemon connection (one forked worker, one temproots file) per *epoch*.
 *
 * Epochs: requests starting within `epochMs` of each other share a connection;
 * the next request after that opens a new one, and an old connection is closed
 * when the last request holding roots through it ends. So a path is protected
 * from before its validity is re-checked until its response ends, and becomes
 * collectable at most when the longest response of its epoch has ended — never
 * for the origin's lifetime.
 *
 * Where the daemon is: the store's own daemon socket (the usual multi-user box,
 * where the origin is not the store's owner and is not a trusted user —
 * AddTempRoot needs no trust), or, for a store the origin owns (a chroot store,
 * a single-user box), a private `nix-daemon` on that store listening on a
 * socket of our own, started once (connections are forks, not new programs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connectDaemon, daemonSocketPath, type DaemonConnection } from '../nix-daemon/index.ts';
import { ownsStore } from './ownership.ts';
import { processAlive } from '../server/process-alive.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../server/log.ts';
import { dirEntries } from './dir-entries.ts';

/** What GC safety needs from a daemon connection (nix-daemon/'s DaemonConnection has it). */
export type RootConnection = Pick<DaemonConnection, 'addTempRoot' | 'close'>;

export type ConnectRoots = () => Promise<RootConnection>;

export interface TempRoots {
  /**
   * Takes temporary roots on the paths; resolves to the function that releases them. The caller then
   * re-checks that each path is still valid: the collector may have taken it before the root.
   */
  hold(storePaths: readonly string[]): Promise<{ release: () => void }>;
  /** Connections open now (tests, /metrics). */
  readonly connections: number;
  close(): Promise<void>;
}

interface Epoch {
  conn: Promise<RootConnection>;
  started: number;
  holders: number;
  retired: boolean;
  /** Operations on one connection go one at a time (the worker protocol is request/response). */
  queue: Promise<unknown>;
}

export function createTempRoots(o: { connect: ConnectRoots; epochMs?: number; now?: () => number }): TempRoots {
  const epochMs = o.epochMs ?? 2000;
  const now = o.now ?? (() => performance.now());
  let current: Epoch | undefined;
  let open = 0;
  const all = new Set<Epoch>();

  const finish = (e: Epoch) => {
    if (!all.delete(e)) return;
    void e.conn.then((c) => {
      open--;
      c.close();
    }, () => {});
  };
  const retire = (e: Epoch) => {
    e.retired = true;
    if (current === e) current = undefined;
    if (e.holders === 0) finish(e);
  };
  let idleTimer: NodeJS.Timeout | undefined;
  const scheduleIdleCheck = () => {
    if (idleTimer) return;
    idleTimer = setTimeout(() => {
      idleTimer = undefined;
      if (current && current.holders === 0) retire(current);
      else if (current) scheduleIdleCheck();
    }, epochMs);
    idleTimer.unref();
  };

  const epoch = (): Epoch => {
    if (current && now() - current.started >= epochMs) retire(current);
    if (!current) {
      const conn = o.connect();
      current = { conn, started: now(), holders: 0, retired: false, queue: Promise.resolve() };
      const e = current;
      all.add(e);
      conn.then(() => open++, () => {
        // A failed connection is never reused.
        if (current === e) current = undefined;
        all.delete(e);
      });
    }
    return current;
  };

  const op = <T>(e: Epoch, fn: (c: RootConnection) => Promise<T>): Promise<T> => {
    const run = e.queue.then(() => e.conn).then(fn);
    e.queue = run.catch(() => {});
    return run;
  };

  return {
    async hold(storePaths) {
      const e = epoch();
      e.holders++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        e.holders--;
        if (e.retired && e.holders === 0) finish(e);
        else scheduleIdleCheck();
      };
      try {
        for (const p of storePaths) await op(e, (c) => c.addTempRoot(p));
        return { release };
      } catch (err) {
        release();
        // A broken connection must not take the next requests down with it.
        if (current === e) retire(e);
        throw err;
      }
    },
    get connections() {
      return open;
    },
    async close() {
      if (idleTimer) clearTimeout(idleTimer);
      current = undefined;
      for (const e of [...all]) finish(e);
    },
  };
}

/** `<store_root>/nix/var/nix/daemon-socket/socket`: the store's own daemon. */
export const daemonSocketOf = (storeRoot: string) => join(storeRoot, 'nix/var/nix/daemon-socket/socket');

export const TEMP_ROOTS_MODES = ['auto', 'daemon', 'local', 'off'] as const;
export type TempRootsMode = (typeof TEMP_ROOTS_MODES)[number];

export interface TempRootsPlan {
  mode: Exclude<TempRootsMode, 'auto'>;
  /** The daemon socket (mode `daemon`). */
  socket: string;
}

/**
 * Where temporary roots are taken. `auto`: the daemon push imports through when push_store names a socket;
 * else the store's daemon socket, unless there is none now and this user owns the store (a chroot store,
 * single-user Nix): then a private daemon. A user that does not own the store can only ever go through the
 * daemon, so it does even when the socket is not there yet (a daemon that starts after the origin; until then
 * each stream says so in the log and eris doctor fails the check).
 */
export function planTempRoots(o: { tempRoots: TempRootsMode; storeRoot: string; pushStore?: string }): TempRootsPlan {
  const pushSocket = o.pushStore?.startsWith('unix://') ? o.pushStore.slice('unix://'.length) : undefined;
  const socket = pushSocket ?? (o.storeRoot === '/' ? daemonSocketPath() : daemonSocketOf(o.storeRoot));
  if (o.tempRoots !== 'auto') return { mode: o.tempRoots, socket };
  if (pushSocket || existsSync(socket) || !ownsStore(o.storeRoot)) return { mode: 'daemon', socket };
  return { mode: 'local', socket };
}

export interface PrivateDaemon {
  socket: string;
  /** Resolves once the socket file exists: bind(2) makes it before listen(2), so connect with connectPrivateDaemon. */
  ready: Promise<void>;
  stop(): void;
}

/** The private daemon's socket directory: `<tmpdir>/eris-roots-<origin pid>-XXXXXX`. */
export const ROOTS_DIR_PREFIX = 'eris-roots-';

/**
 * Removes the socket directories of origins that are gone (killed with their process group, so the shell that
 * removes its directory died too). Directories of live processes, and of other users, stay.
 */
export function removeStaleRootDirs(dir = tmpdir()): string[] {
  const removed: string[] = [];
  const names = dirEntries(dir);
  for (const n of names) {
    const m = new RegExp(`^${ROOTS_DIR_PREFIX}(\\d+)-`).exec(n);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    try {
      rmSync(join(dir, n), { recursive: true });
      removed.push(join(dir, n));
    } catch {}
  }
  return removed;
}

/**
 * `nix-daemon` on the store at storeRoot (as its owner), listening on a private socket. A shell between us
 * and it stops it, and removes the socket's directory, when our end of its stdin closes: it never outlives
 * the origin, even one killed with -9. A directory left by an origin killed with its whole process group is
 * removed by the next origin that starts one (removeStaleRootDirs).
 */
export function startPrivateDaemon(o: { storeRoot: string; log?: Logger; nixDaemon?: string; tmp?: string }): PrivateDaemon {
  const tmp = o.tmp ?? tmpdir();
  removeStaleRootDirs(tmp);
  const dir = mkdtempSync(join(tmp, `${ROOTS_DIR_PREFIX}${process.pid}-`));
  const socket = join(dir, 'socket');
  const daemon = o.nixDaemon ?? 'nix-daemon';
  const script = `"$0" & pid=$!; trap 'kill $pid 2>/dev/null; wait $pid; rm -rf "$1"' EXIT; trap 'exit 1' HUP INT TERM; read _ || true`;
  const child: ChildProcess = spawn('sh', ['-c', script, daemon, dir], {
    env: { ...process.env, NIX_REMOTE: o.storeRoot === '/' ? 'local' : o.storeRoot, NIX_DAEMON_SOCKET_PATH: socket },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr.length < 10_000 ? (stderr += d) : undefined));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ready = (async () => {
    const started = Date.now();
    while (!existsSync(socket)) {
      const done = await Promise.race([exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20))]);
      if (done || Date.now() - started > 30_000) throw new Error(`nix-daemon for ${o.storeRoot} did not start: ${stderr.trim().split('\n').pop() ?? 'no output'}`);
    }
  })();
  ready.catch((e) => o.log?.error({ msg: 'temporary GC roots: private nix-daemon failed', error: (e as Error).message }));
  return {
    socket,
    ready,
    stop() {
      // The shell kills the daemon and removes the directory.
      child.stdin?.end();
    },
  };
}

/**
 * A connection to a private daemon. Its socket file appears at bind(2), before listen(2), so a connection
 * refused just after `ready` is tried again for up to `retryMs` (seen under a loaded CI run: the first root's
 * connection refused). Not probed ahead: every connection makes the daemon fork a worker that opens the store
 * (and Nix may change the DB's journal mode as it does).
 */
export async function connectPrivateDaemon(d: Pick<PrivateDaemon, 'ready' | 'socket'>, retryMs = 10_000): Promise<DaemonConnection> {
  await d.ready;
  const started = Date.now();
  for (;;) {
    try {
      return await connectDaemon({ kind: 'socket', socket: d.socket });
    } catch (e) {
      const code = ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || Date.now() - started > retryMs) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** The origin's temporary roots as the config asks (undefined when off or unreachable), and how to stop them. */
export function startTempRoots(o: { tempRoots: TempRootsMode; storeRoot: string; pushStore?: string; log: Logger }): { tempRoots?: TempRoots; stop: () => void } {
  const { mode, socket } = planTempRoots(o);
  if (mode === 'daemon') {
    const tempRoots = createTempRoots({ connect: () => connectDaemon({ kind: 'socket', socket }) });
    return { tempRoots, stop: () => void tempRoots.close() };
  }
  if (mode === 'local') {
    const d = startPrivateDaemon({ storeRoot: o.storeRoot, log: o.log });
    const tempRoots = createTempRoots({ connect: () => connectPrivateDaemon(d) });
    return {
      tempRoots,
      stop: () => {
        void tempRoots.close();
        d.stop();
      },
    };
  }
  o.log.warn({ msg: 'serving without temporary GC roots: a garbage collection may cut a download off', tempRoots: o.tempRoots });
  return { stop: () => {} };
}
