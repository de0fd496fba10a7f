/**
 * A few long-lived daemon connections shared by a process: `use(fn)` lends
 * one (waiting while all are busy), opens them on demand, replaces a broken
 * one, and closes those idle or older than `maxAgeMs` — which also lets go of
 * the temporary GC roots a connection accumulates (they last as long as it).
 *
 * `ready` connections are opened in advance and kept open while unused (a fresh connection holds no roots):
 * starting `nix-daemon --stdio` and its handshake take ~90 ms on a loaded box, which the first import after
 * a quiet minute would otherwise wait for. A used one that goes idle is closed and a fresh one opened.
 */
import type { ConnectOptions, DaemonConnection } from './connection.ts';
import { connectDaemon, type DaemonTarget } from './index.ts';

export interface DaemonPool {
  readonly size: number;
  use<T>(fn: (conn: DaemonConnection) => Promise<T>): Promise<T>;
  close(): void;
}

export interface PoolOptions {
  size: number;
  /** A connection older than this is closed after its current use (default 10 minutes). */
  maxAgeMs?: number;
  /** An idle connection is closed after this (default 60 s). */
  idleMs?: number;
  connect?: ConnectOptions;
  /** Connections opened ahead of use and kept while unused (default 0: opened on demand). */
  ready?: number;
  /** For tests: how a connection is opened. */
  open?: () => Promise<DaemonConnection>;
}

interface Idle {
  conn: DaemonConnection;
  born: number;
  /** Closes it when idle too long; none for a fresh connection nobody has used. */
  timer?: NodeJS.Timeout;
}

export function createDaemonPool(target: DaemonTarget, o: PoolOptions): DaemonPool {
  const maxAgeMs = o.maxAgeMs ?? 600_000;
  const idleMs = o.idleMs ?? 60_000;
  const open = o.open ?? (() => connectDaemon(target, o.connect));
  const idle: Idle[] = [];
  const waiters: Array<() => void> = [];
  let count = 0;
  let closed = false;
  const ready = Math.min(o.ready ?? 0, o.size);
  let fresh = 0; // unused connections in idle (opened ahead)

  /** Opens fresh connections until `ready` of them wait unused (an error is left for the next use to meet). */
  function fill(): void {
    while (!closed && fresh < ready && count < o.size) {
      count++;
      fresh++;
      open().then((conn) => {
        if (closed) {
          conn.close();
          return;
        }
        idle.push({ conn, born: Date.now() });
        waiters.shift()?.();
      }, () => {
        count--;
        fresh--;
      });
    }
  }

  async function acquire(): Promise<{ conn: DaemonConnection; born: number }> {
    for (;;) {
      if (closed) throw new Error('the daemon connection pool is closed');
      const spare = idle.pop();
      if (spare) {
        if (spare.timer) clearTimeout(spare.timer);
        else fresh--;
        if (!spare.conn.broken && Date.now() - spare.born < maxAgeMs) return spare;
        spare.conn.close();
        count--;
        continue;
      }
      if (count < o.size) {
        count++;
        try {
          return { conn: await open(), born: Date.now() };
        } catch (e) {
          count--;
          waiters.shift()?.();
          throw e;
        }
      }
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  }

  function release(conn: DaemonConnection, born: number): void {
    if (closed || conn.broken || Date.now() - born >= maxAgeMs) {
      conn.close();
      count--;
      fill();
    } else {
      const entry: Idle = {
        conn,
        born,
        timer: setTimeout(() => {
          const i = idle.indexOf(entry);
          if (i >= 0) {
            idle.splice(i, 1);
            conn.close();
            count--;
            fill();
          }
        }, idleMs),
      };
      entry.timer?.unref();
      idle.push(entry);
    }
    waiters.shift()?.();
  }

  fill();
  return {
    size: o.size,
    async use(fn) {
      const { conn, born } = await acquire();
      try {
        return await fn(conn);
      } finally {
        release(conn, born);
      }
    },
    close() {
      closed = true;
      for (const e of idle.splice(0)) {
        if (e.timer) clearTimeout(e.timer);
        e.conn.close();
      }
      for (const w of waiters.splice(0)) w();
    },
  };
}
