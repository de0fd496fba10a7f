/**
 * Temporary GC roots: the epoch bookkeeping (fake connections: which connection a request uses and when it
 * closes), and the private nix-daemon on a real Nix 2.8 chroot store — a root taken through it makes Nix
 * refuse the delete, and its socket directory goes away when it stops, when its origin is killed with -9,
 * or (killed with its process group) at the next start.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectDaemon } from '../nix-daemon/index.ts';
import { connectPrivateDaemon, createTempRoots, removeStaleRootDirs, ROOTS_DIR_PREFIX, startPrivateDaemon, type RootConnection } from './temp-roots.ts';
import { nixEnv, nixMissing } from '../../test/helpers/nix.ts';
import { until } from '../../test/helpers/faults.ts';

describe('temporary roots: epochs', () => {
  function fakeConnections() {
    const conns: { roots: string[]; closed: boolean }[] = [];
    const connect = async (): Promise<RootConnection> => {
      const c = { roots: [] as string[], closed: false };
      conns.push(c);
      return { addTempRoot: async (p: string) => void c.roots.push(p), close: () => void (c.closed = true) };
    };
    return { conns, connect };
  }

  it('requests of one epoch share a connection; it closes when the epoch is over and its last holder is done', async () => {
    const { conns, connect } = fakeConnections();
    let t = 0;
    const roots = createTempRoots({ connect, epochMs: 1000, now: () => t });
    const a = await roots.hold(['/nix/store/a']);
    t = 500;
    const b = await roots.hold(['/nix/store/b']);
    expect(conns.map((c) => c.roots)).toEqual([['/nix/store/a', '/nix/store/b']]);
    t = 1500; // a new epoch: a new connection; the old one stays while a and b hold roots through it
    const c = await roots.hold(['/nix/store/c']);
    expect(conns.map((x) => x.roots)).toEqual([['/nix/store/a', '/nix/store/b'], ['/nix/store/c']]);
    a.release();
    await Promise.resolve();
    expect(conns[0]!.closed).toBe(false);
    b.release();
    b.release(); // twice is once
    await until(() => conns[0]!.closed, 1000);
    expect(conns.map((x) => x.closed)).toEqual([true, false]);
    expect(roots.connections).toBe(1);
    c.release();
    await roots.close();
    await until(() => conns[1]!.closed, 1000);
    expect(roots.connections).toBe(0);
  });

  it('a connection that fails is not used again', async () => {
    let n = 0;
    const roots = createTempRoots({
      connect: async () => {
        if (n++ === 0) throw new Error('no daemon');
        return { addTempRoot: async () => {}, close: () => {} };
      },
    });
    await expect(roots.hold(['/nix/store/a'])).rejects.toThrow('no daemon');
    await expect(roots.hold(['/nix/store/a'])).resolves.toBeDefined();
    expect(n).toBe(2);
    await roots.close();
  });
});

describe.skipIf(nixMissing)('temporary roots: the private nix-daemon on a chroot store', () => {
  let dir: string;
  let root: string;
  let path: string;
  const dirsNow = () => readdirSync(dir).filter((n) => n.startsWith(ROOTS_DIR_PREFIX));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'eris-temp-roots-'));
    root = join(dir, 'root');
    writeFileSync(join(dir, 'f'), 'held\n');
    path = execFileSync('nix-store', ['--store', root, '--add', join(dir, 'f')], { env: nixEnv(), encoding: 'utf8' }).trim();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const deletes = (p: string) => {
    try {
      execFileSync('nix-store', ['--store', root, '--delete', p], { env: nixEnv(), stdio: 'pipe' });
      return 'deleted';
    } catch (e) {
      return String((e as { stderr: Buffer }).stderr);
    }
  };

  it('a connection right after its socket path appears, before the daemon listens, is tried again until it is accepted', async () => {
    // A daemon whose socket path exists half a second before it listens (bind(2) before listen(2), drawn out).
    const slow = join(dir, 'slow-nix-daemon');
    writeFileSync(slow, '#!/bin/sh\ntouch "$NIX_DAEMON_SOCKET_PATH"; sleep 0.5; rm -f "$NIX_DAEMON_SOCKET_PATH"; exec nix-daemon\n', { mode: 0o755 });
    const d = startPrivateDaemon({ storeRoot: root, tmp: dir, nixDaemon: slow });
    try {
      const conn = await connectPrivateDaemon(d);
      await conn.addTempRoot(path);
      conn.close();
    } finally {
      d.stop();
      expect(await until(() => dirsNow().length === 0, 10_000)).toBe(true);
    }
  });

  it('holds a root while the connection lives; stop() removes its socket directory', async () => {
    const d = startPrivateDaemon({ storeRoot: root, tmp: dir });
    await d.ready;
    expect(dirsNow()).toHaveLength(1);
    const conn = await connectDaemon({ kind: 'socket', socket: d.socket });
    await conn.addTempRoot(path);
    expect(deletes(path)).toMatch(/still alive/);
    conn.close();
    d.stop();
    expect(await until(() => dirsNow().length === 0, 10_000)).toBe(true);
    expect(await until(() => deletes(path) === 'deleted', 10_000, 200)).toBe(true);
  });

  it('an origin killed with -9 leaves no directory; one killed with its shell is cleaned at the next start', async () => {
    const script = `import { startPrivateDaemon } from ${JSON.stringify(new URL('./temp-roots.ts', import.meta.url).pathname)};
      const d = startPrivateDaemon({ storeRoot: ${JSON.stringify(root)}, tmp: ${JSON.stringify(dir)} });
      await d.ready; console.log('ready'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: nixEnv() });
    await new Promise((r) => child.stdout.once('data', r));
    expect(dirsNow()).toHaveLength(1);
    child.kill('SIGKILL');
    expect(await until(() => dirsNow().length === 0, 10_000)).toBe(true);

    // What a process-group kill leaves: a directory named for a pid that no longer exists.
    const dead = execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim();
    mkdirSync(join(dir, `${ROOTS_DIR_PREFIX}${dead}-abcdef`));
    mkdirSync(join(dir, `${ROOTS_DIR_PREFIX}${process.pid}-abcdef`));
    expect(removeStaleRootDirs(dir)).toEqual([join(dir, `${ROOTS_DIR_PREFIX}${dead}-abcdef`)]);
    expect(existsSync(join(dir, `${ROOTS_DIR_PREFIX}${process.pid}-abcdef`))).toBe(true);
  });
});
