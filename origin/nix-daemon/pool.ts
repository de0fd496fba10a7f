/**
 * A few long-lived daemon connections shared by a process: `use(fn)` lends
 * one (waiting while all are busy), opens them on demand, replaces a broken
 * one, and closes those idle or older than `maxAgeMs` — which also lets go of
 * the temporary GC roots a connection accumulates (they last as long as it).
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
  /** For tests: how a connection is opened. */
  open?: () => Promise<DaemonConnection>;
}

interface Idle {
  conn: DaemonConnection;
  born: number;
  timer: NodeJS.Timeout;
}

export function createDaemonPool(target: DaemonTarget, o: PoolOptions): DaemonPool {
  const maxAgeMs = o.maxAgeMs ?? 600_000;
  const idleMs = o.idleMs ?? 60_000;
  const open = o.open ?? (() => connectDaemon(target, o.connect));
  const idle: Idle[] = [];
  const waiters: Array<() => void> = [];
  let count = 0;
  let closed = false;

  async function acquire(): Promise<{ conn: DaemonConnection; born: number }> {
    for (;;) {
      if (closed) throw new Error('the daemon connection pool is closed');
      const spare = idle.pop();
      if (spare) {
        clearTimeout(spare.timer);
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
          }
        }, idleMs),
      };
      entry.timer.unref();
      idle.push(entry);
    }
    waiters.shift()?.();
  }

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
        clearTimeout(e.timer);
        e.conn.close();
      }
      for (const w of waiters.splice(0)) w();
    },
  };
}
