/**
 * The worker-protocol client against a real `nix-daemon --stdio` serving a
 * chroot store in a temp dir: handshake, queries, temporary roots, and adding
 * paths (one at a time and several at once), with the daemon's own checks
 * (NarHash, NarSize, signature) refusing what is wrong and leaving nothing valid.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fingerprint } from '../../shared/fingerprint.ts';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { createSigner, generateKeyPair } from '../../shared/signing.ts';
import { fakeHashPart, regularFileNar } from '../../test/helpers/memory-store.ts';
import { NIX_FLAGS, nixEnv, nixMissing } from '../../test/helpers/nix.ts';
import { DaemonError, type DaemonConnection, type NarToAdd } from './connection.ts';
import { connectDaemon, daemonTarget } from './index.ts';
import { createDaemonPool } from './pool.ts';
import { formatProtocol } from './wire.ts';

const STORE = '/nix/store';
const trustedKey = generateKeyPair('daemon-test-1');
const otherKey = generateKeyPair('daemon-test-other-1');
const signer = createSigner(trustedKey.secret);
const stranger = createSigner(otherKey.secret);

interface TestPath extends NarToAdd {
  path: string;
  contents: Buffer;
  bytes: Buffer;
}

let serial = 0;
function makePath(name: string, o: { refs?: string[]; contents?: Buffer; sign?: typeof signer | null; narHash?: string } = {}): TestPath {
  const unique = `${name}-${process.pid}-${serial++}`;
  const path = `${STORE}/${fakeHashPart(unique)}-${name}`;
  const contents = o.contents ?? Buffer.from(`contents of ${unique}\n`);
  const { nar } = regularFileNar(contents);
  // The signature covers the NarHash claimed (a wrong one too: what the origin would sign for a lying narinfo).
  const narHash = o.narHash ?? createHash('sha256').update(nar).digest('hex');
  const refs = [...(o.refs ?? [])].sort();
  const sigs = o.sign === null ? [] : [(o.sign ?? signer).sign(fingerprint(path, formatSha256Nix32(Buffer.from(narHash, 'hex')), nar.length, refs))];
  return {
    path,
    contents,
    bytes: nar,
    info: { path, deriver: '', narHash, references: refs, registrationTime: 0, narSize: nar.length, ultimate: false, sigs, ca: '' },
    nar: () => Readable.from([nar.subarray(0, 40), nar.subarray(40)]),
  };
}

describe.skipIf(nixMissing)('Nix daemon worker protocol (real nix-daemon --stdio, chroot store)', () => {
  let dir: string;
  let root: string;
  let conn: DaemonConnection;
  const valid = (p: string) => spawnSync('nix-store', ['--store', root, '--check-validity', p], { env: nixEnv(), stdio: 'ignore' }).status === 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-daemon-'));
    root = join(dir, 'root');
    conn = await connectDaemon(daemonTarget(root, { 'trusted-public-keys': signer.publicKey, 'require-sigs': 'true' }));
  });
  afterAll(() => {
    conn?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('negotiates the protocol and learns the daemon version', () => {
    const nixVersion = execFileSync('nix', ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
    expect(formatProtocol(conn.protocol)).toBe('1.34');
    expect(conn.daemonNixVersion).toBe(nixVersion);
    expect(conn.canAddMultiple).toBe(true);
  });

  it('adds a signed path: valid, with the metadata it was given', async () => {
    const p = makePath('one');
    expect(await conn.isValidPath(p.path)).toBe(false);
    expect(await conn.queryPathInfo(p.path)).toBeUndefined();
    await conn.addToStoreNar(p);
    expect(await conn.isValidPath(p.path)).toBe(true);
    expect(valid(p.path)).toBe(true);
    const info = await conn.queryPathInfo(p.path);
    expect(info).toMatchObject({ path: p.path, narSize: p.bytes.length, references: [], sigs: p.info.sigs, ultimate: false });
    expect(info!.narHash).toBe(p.info.narHash);
    expect(readFileSync(join(root, p.path))).toEqual(p.contents);
    expect(await conn.queryValidPaths([p.path, makePath('absent').path])).toEqual([p.path]);
  });

  it('refuses a wrong NarHash, a foreign signature and a NAR cut short; nothing becomes valid and the connection goes on', async () => {
    const badHash = makePath('bad-hash', { narHash: createHash('sha256').update('something else').digest('hex') });
    await expect(conn.addToStoreNar(badHash)).rejects.toThrow(/hash mismatch importing path/);
    expect(valid(badHash.path)).toBe(false);

    const foreign = makePath('foreign', { sign: stranger });
    await expect(conn.addToStoreNar(foreign)).rejects.toThrow(/lacks a valid signature/);
    const unsigned = makePath('unsigned', { sign: null });
    await expect(conn.addToStoreNar(unsigned)).rejects.toThrow(/lacks a valid signature/);
    expect(valid(foreign.path) || valid(unsigned.path)).toBe(false);

    const cut = makePath('cut');
    const failing: NarToAdd = {
      info: cut.info,
      nar: () => (async function* () {
        yield cut.bytes.subarray(0, 50);
        throw new Error('upload file vanished');
      })(),
    };
    const err = await conn.addToStoreNar(failing).catch((e) => e);
    expect(err).toBeInstanceOf(DaemonError);
    expect(err.message).toMatch(/upload file vanished/);
    expect(valid(cut.path)).toBe(false);

    const after = makePath('after-failures');
    await conn.addToStoreNar(after);
    expect(valid(after.path)).toBe(true);
    expect(conn.broken).toBe(false);
  });

  it('refuses a path whose reference is not valid', async () => {
    const dangling = makePath('dangling', { refs: [makePath('never-added').path] });
    await expect(conn.addToStoreNar(dangling)).rejects.toThrow(DaemonError);
    expect(valid(dangling.path)).toBe(false);
  });

  it('adds several paths in one AddMultipleToStore, references first', async () => {
    const a = makePath('multi-a');
    const b = makePath('multi-b', { refs: [a.path] });
    const c = makePath('multi-c', { refs: [a.path, b.path] });
    await conn.addMultipleToStore([a, b, c]);
    for (const p of [a, b, c]) expect(valid(p.path)).toBe(true);
    const info = await conn.queryPathInfo(c.path);
    expect(info!.references).toEqual([a.path, b.path].sort());
  });

  it('AddMultipleToStore stops at a bad path: the ones before it are valid, it and the rest are not', async () => {
    const good = makePath('multi-good');
    const bad = makePath('multi-bad', { sign: stranger });
    const later = makePath('multi-later');
    await expect(conn.addMultipleToStore([good, bad, later])).rejects.toThrow(/lacks a valid signature/);
    expect(valid(good.path)).toBe(true);
    expect(valid(bad.path)).toBe(false);
    expect(valid(later.path)).toBe(false);
    expect(conn.broken).toBe(false);
    expect(await conn.isValidPath(good.path)).toBe(true);
  });

  it('AddTempRoot keeps a path from the garbage collector while the connection is open', async () => {
    const p = makePath('temp-rooted');
    await conn.addToStoreNar(p);
    await conn.addTempRoot(p.path);
    const temproots = join(root, 'nix/var/nix/temproots');
    expect(readdirSync(temproots).some((f) => readFileSync(join(temproots, f), 'latin1').includes(p.path))).toBe(true);
    const del = spawnSync('nix', [...NIX_FLAGS, 'store', 'delete', '--store', root, p.path], { env: nixEnv(), encoding: 'utf8' });
    expect(del.status).not.toBe(0);
    expect(del.stderr).toMatch(/still alive/);
    expect(valid(p.path)).toBe(true);
  });

  it('streams a large NAR in frames without holding it', async () => {
    const size = 48 * 1024 * 1024;
    const block = Buffer.alloc(1024 * 1024, 7);
    const contents = () => (function* () {
      for (let i = 0; i < size / block.length; i++) yield block;
    })();
    // The NAR of one regular file, built around a stream of its contents.
    const { nar: empty } = regularFileNar(Buffer.alloc(0));
    const head = empty.subarray(0, empty.length - 8 - 16); // up to the contents' length word
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(size));
    const tail = empty.subarray(empty.length - 16);
    const hash = createHash('sha256').update(head).update(len);
    for (const b of contents()) hash.update(b);
    hash.update(tail);
    const narSize = head.length + 8 + size + tail.length;
    const path = `${STORE}/${fakeHashPart(`big-${process.pid}`)}-big`;
    const digest = hash.digest();
    const before = process.memoryUsage().rss;
    let peak = before;
    await conn.addToStoreNar({
      info: { path, deriver: '', narHash: digest.toString('hex'), references: [], registrationTime: 0, narSize, ultimate: false,
        sigs: [signer.sign(fingerprint(path, formatSha256Nix32(digest), narSize, []))], ca: '' },
      nar: () => (async function* () {
        yield Buffer.concat([head, len]);
        for (const b of contents()) {
          peak = Math.max(peak, process.memoryUsage().rss);
          yield b;
        }
        yield tail;
      })(),
    });
    expect(valid(path)).toBe(true);
    expect(peak - before).toBeLessThan(32 * 1024 * 1024);
  });

  it('takes a NAR from a source that refills one buffer for every chunk (as a streamed import\'s follower does): the bytes the daemon gets are the ones given', async () => {
    const blocks = 12;
    const block = 1024 * 1024;
    const fill = (buf: Buffer, i: number) => {
      for (let at = 0; at < buf.length; at += 4) buf.writeUInt32LE((i * 2654435761 + at) >>> 0, at);
      return buf;
    };
    const { nar: empty } = regularFileNar(Buffer.alloc(0));
    const head = empty.subarray(0, empty.length - 8 - 16);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(blocks * block));
    const tail = empty.subarray(empty.length - 16);
    const hash = createHash('sha256').update(head).update(len);
    for (let i = 0; i < blocks; i++) hash.update(fill(Buffer.alloc(block), i));
    hash.update(tail);
    const narSize = head.length + 8 + blocks * block + tail.length;
    const path = `${STORE}/${fakeHashPart(`refilled-${process.pid}`)}-refilled`;
    const digest = hash.digest();
    const one = Buffer.alloc(block);
    await conn.addToStoreNar({
      info: { path, deriver: '', narHash: digest.toString('hex'), references: [], registrationTime: 0, narSize, ultimate: false,
        sigs: [signer.sign(fingerprint(path, formatSha256Nix32(digest), narSize, []))], ca: '' },
      nar: () => (async function* () {
        yield Buffer.concat([head, len]);
        for (let i = 0; i < blocks; i++) yield fill(one, i); // the next block overwrites it as soon as it is asked for
        yield tail;
      })(),
    });
    expect(valid(path)).toBe(true);
  });
});

describe.skipIf(nixMissing)('daemon connection pool (real nix-daemon --stdio)', () => {
  it('keeps a connection ready ahead of use; a used one idle too long is closed and a fresh one opened', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eris-pool-'));
    const target = daemonTarget(join(dir, 'root'));
    const opened: DaemonConnection[] = [];
    const pool = createDaemonPool(target, { size: 2, ready: 1, idleMs: 200, open: async () => {
      const c = await connectDaemon(target);
      opened.push(c);
      return c;
    } });
    try {
      // Opened at creation, before anyone asked.
      await vi.waitFor(() => expect(opened.length).toBe(1), { timeout: 20_000 });
      const first = opened[0]!;
      expect(await pool.use(async (c) => {
        expect(c).toBe(first);
        return c.isValidPath(`${STORE}/${fakeHashPart('pool-nothing')}-x`);
      })).toBe(false);
      expect(opened.length).toBe(1);
      // Used, then idle past idleMs: closed (its temporary roots go with it), and a fresh one waits.
      await vi.waitFor(() => expect(first.broken).toBe(true), { timeout: 20_000 });
      await vi.waitFor(() => expect(opened.length).toBe(2), { timeout: 20_000 });
      await pool.use(async (c) => expect(c).toBe(opened[1]));
    } finally {
      pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
