/**
 * Talking to Nix's store through its daemon, from Node: `connectDaemon` opens
 * one worker-protocol connection to the store a caller names.
 *
 *   const conn = await connectDaemon(daemonTarget('/'));          // the box's store
 *   await conn.addTempRoot('/nix/store/…');                         // until conn.close()
 *
 * Store names, as push_store and the tests use them:
 *   'daemon' / 'unix:///path/socket' — that daemon socket (it decides whether we are trusted);
 *   'auto' or '/' — the box's store: a `nix-daemon --stdio` of our own when this user may write
 *   the store (root), else the daemon socket (NIX_DAEMON_SOCKET_PATH, NIX_STATE_DIR as Nix reads them);
 *   any other absolute path — a chroot store under that root, through `nix-daemon --stdio --store ROOT`.
 */
import { ownsStore } from '../store/ownership.ts';
import { openDaemonConnection, type ConnectOptions, type DaemonConnection } from './connection.ts';
import { connectSocket, daemonSocketPath, spawnStdioDaemon } from './transport.ts';

export { DaemonConnectionError, DaemonError, openDaemonConnection, type AddOptions, type ConnectOptions, type DaemonConnection, type NarToAdd } from './connection.ts';
export { DEFAULT_DAEMON_SOCKET, daemonSocketPath } from './transport.ts';
export { formatProtocol, type DaemonPathInfo } from './wire.ts';

export type DaemonTarget =
  | { kind: 'socket'; socket: string }
  /** `storeRoot` '/' is the box's own store; `options` go on nix-daemon's command line (`--option k v`). */
  | { kind: 'stdio'; storeRoot: string; options?: Record<string, string>; program?: string; env?: NodeJS.ProcessEnv };

/** Where a store named as in push_store is reached; `options` apply to a daemon we start (chroot or owned store). */
export function daemonTarget(store: string, options: Record<string, string> = {}, env: NodeJS.ProcessEnv = process.env): DaemonTarget {
  if (store === 'daemon') return { kind: 'socket', socket: daemonSocketPath(env) };
  if (store.startsWith('unix://')) return { kind: 'socket', socket: store.slice('unix://'.length) };
  if (store === 'auto' || store === '/') return ownsStore('/') ? { kind: 'stdio', storeRoot: '/', options } : { kind: 'socket', socket: daemonSocketPath(env) };
  if (store.startsWith('/')) return { kind: 'stdio', storeRoot: store, options };
  throw new Error(`cannot reach store ${JSON.stringify(store)}: expected "auto", "daemon", unix:///… or an absolute store root`);
}

export const describeTarget = (t: DaemonTarget) =>
  t.kind === 'socket' ? `the Nix daemon at ${t.socket}` : t.storeRoot === '/' ? 'nix-daemon --stdio for /nix/store' : `nix-daemon --stdio for the store under ${t.storeRoot}`;

export async function connectDaemon(t: DaemonTarget, o: ConnectOptions = {}): Promise<DaemonConnection> {
  if (t.kind === 'socket') return openDaemonConnection(await connectSocket(t.socket), o);
  const args: string[] = [];
  // The box's store is Nix's default one; `--store /` would open it as a chroot store rooted at /.
  if (t.storeRoot !== '/') args.push('--store', t.storeRoot);
  for (const [k, v] of Object.entries(t.options ?? {})) args.push('--option', k, v);
  // Our own daemon must not hand the work to the system daemon (NIX_REMOTE=daemon in the origin's environment).
  const env = { ...(t.env ?? process.env), NIX_REMOTE: '' };
  return openDaemonConnection(spawnStdioDaemon({ program: t.program, args, env, describe: describeTarget(t) }), o);
}
