/**
 * How bytes reach a Nix daemon: its Unix socket (the box's
 * `/nix/var/nix/daemon-socket/socket`, where the daemon decides whether this
 * user is trusted), or a `nix-daemon --stdio` started for one store (a store
 * under another root; that daemon trusts whoever started it, and checks
 * signatures against the keys on its command line).
 */
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import type { Readable, Writable } from 'node:stream';

export const DEFAULT_DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket';

/** The socket Nix itself would use: NIX_DAEMON_SOCKET_PATH, else under NIX_STATE_DIR, else the default. */
export function daemonSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NIX_DAEMON_SOCKET_PATH) return env.NIX_DAEMON_SOCKET_PATH;
  if (env.NIX_STATE_DIR) return `${env.NIX_STATE_DIR.replace(/\/$/, '')}/daemon-socket/socket`;
  return DEFAULT_DAEMON_SOCKET;
}

export interface Transport {
  /** What this is, for messages: "the Nix daemon at /…/socket", "nix-daemon --stdio for /tmp/root". */
  describe: string;
  input: Readable;
  output: Writable;
  /** Why the other side is gone (the daemon's last stderr lines, an exit status), when known. */
  lastWords(): string;
  close(): void;
}

export function connectSocket(path: string, timeoutMs = 10_000): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`cannot connect to the Nix daemon at ${path}: timed out`));
    }, timeoutMs);
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to the Nix daemon at ${path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, { cause: e }));
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => {}); // seen by the reader and writer
      resolve({ describe: `the Nix daemon at ${path}`, input: socket, output: socket, lastWords: () => '', close: () => socket.destroy() });
    });
  });
}

export interface StdioDaemonOptions {
  /** `nix-daemon` by default. */
  program?: string;
  /** Arguments after `--stdio`, e.g. `['--store', root, '--option', 'trusted-public-keys', keys]`. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  describe?: string;
}

export function spawnStdioDaemon(o: StdioDaemonOptions): Transport {
  const program = o.program ?? 'nix-daemon';
  const child = spawn(program, ['--stdio', ...o.args], { env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let exit = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  child.once('error', (e) => (exit = `cannot run ${program}: ${e.message}`));
  child.once('exit', (code, signal) => (exit ||= signal ? `${program} killed by ${signal}` : `${program} exited with ${code}`));
  child.stdin.on('error', () => {}); // EPIPE when it is gone; the reader reports it
  return {
    describe: o.describe ?? `${program} --stdio ${o.args.join(' ')}`,
    input: child.stdout,
    output: child.stdin,
    lastWords: () => [stderr.trim().split('\n').filter(Boolean).pop(), exit].filter(Boolean).join('; '),
    close: () => {
      child.stdin.end();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
