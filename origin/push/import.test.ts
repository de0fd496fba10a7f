/**
 * The importer against a real `nix-daemon --stdio` on a chroot store: paths
 * become valid only once imported, those arriving together go in one daemon
 * operation, a bad one in a batch fails alone, and a key the store does not
 * trust is refused with what to do about it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../shared/fingerprint.ts';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { encodeNix32 } from '../../shared/nix32.ts';
import type { NarInfo } from '../../shared/narinfo.ts';
import { createSigner, generateKeyPair } from '../../shared/signing.ts';
import { fakeHashPart, regularFileNar } from '../../test/helpers/memory-store.ts';
import { nixEnv, nixMissing } from '../../test/helpers/nix.ts';
import { connectDaemon, daemonTarget, type DaemonConnection } from '../nix-daemon/index.ts';
import { createDaemonPool } from '../nix-daemon/pool.ts';
import { createImporter, type Importer } from './import.ts';
import { PushError } from './errors.ts';

const cacheKey = createSigner(generateKeyPair('import-test-1').secret);
const strangerKey = createSigner(generateKeyPair('import-stranger-1').secret);

describe.skipIf(nixMissing)('importer over the Nix daemon protocol (real nix-daemon --stdio)', () => {
  let dir: string;
  let root: string;
  let importer: Importer;
  const ops: string[] = [];
  const valid = (p: string) => spawnSync('nix-store', ['--store', root, '--check-validity', p], { env: nixEnv(), stdio: 'ignore' }).status === 0;
  let serial = 0;

  /** A one-file path, its zstd NAR file on disk, and a narinfo signed by `signer`. */
  function upload(name: string, o: { signer?: typeof cacheKey; refs?: string[]; narSize?: number; narHash?: string } = {}): { info: NarInfo; file: string } {
    const unique = `${name}-${process.pid}-${serial++}`;
    const storePath = `/nix/store/${fakeHashPart(unique)}-${name}`;
    const { nar } = regularFileNar(Buffer.from(`${unique}\n`));
    const zst = zstdCompressSync(nar);
    const fileHash = encodeNix32(createHash('sha256').update(zst).digest());
    const file = join(dir, `${fileHash}.nar.zst`);
    writeFileSync(file, zst);
    const narHash = o.narHash ?? formatSha256Nix32(createHash('sha256').update(nar).digest());
    const refs = (o.refs ?? []).slice().sort();
    // Signed as the origin signs what the narinfo claims (a wrong NarSize too).
    const narSize = o.narSize ?? nar.length;
    const info: NarInfo = {
      storePath, url: `nar/${fileHash}.nar.zst`, compression: 'zstd', fileHash: `sha256:${fileHash}`, fileSize: zst.length, narHash, narSize,
      references: refs.map((r) => r.slice('/nix/store/'.length)), sigs: [(o.signer ?? cacheKey).sign(fingerprint(storePath, narHash, narSize, refs))],
    };
    return { info, file };
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'eris-import-'));
    root = join(dir, 'root');
    const target = daemonTarget(root, { 'trusted-public-keys': cacheKey.publicKey, 'require-sigs': 'true' });
    const pool = createDaemonPool(target, {
      size: 1,
      // Count the operations the importer sends.
      open: async () => {
        const c = await connectDaemon(target);
        return new Proxy(c, {
          get(t, k) {
            const v = Reflect.get(t, k);
            if (typeof v !== 'function') return v;
            return (...args: unknown[]) => {
              ops.push(`${String(k)}${Array.isArray(args[0]) ? `(${args[0].length})` : ''}`);
              return (v as (...a: unknown[]) => unknown).apply(t, args);
            };
          },
        }) as DaemonConnection;
      },
    });
    importer = createImporter({ storeUri: root, storeDir: '/nix/store', trust: 'signature', trustedKeys: [cacheKey.publicKey], pool });
  });
  afterAll(() => {
    importer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports one path: valid when the promise resolves, not before', async () => {
    const u = upload('single');
    expect(valid(u.info.storePath)).toBe(false);
    await importer.importPath(u.info, u.file);
    expect(valid(u.info.storePath)).toBe(true);
  });

  it('paths arriving together go in one AddMultipleToStore; a bad one fails alone with the fix named', async () => {
    ops.length = 0;
    const first = upload('group-first');
    const group = Array.from({ length: 12 }, (_, i) => upload(`group-${i}`));
    const bad = upload('group-bad', { signer: strangerKey });
    const all = [first, ...group.slice(0, 6), bad, ...group.slice(6)];
    const results = await Promise.allSettled(all.map((u) => importer.importPath(u.info, u.file)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [[all[i]!.info.storePath, r.reason as PushError]] as const : []));
    expect(failed.map(([p]) => p)).toEqual([bad.info.storePath]);
    const err = failed[0]![1];
    expect(err).toBeInstanceOf(PushError);
    expect(err.status).toBe(500);
    expect(err.message).toContain(`trusted-public-keys in the Nix daemon's nix.conf (${cacheKey.publicKey})`);
    for (const u of all) expect(valid(u.info.storePath)).toBe(u !== bad);
    // All 14 in one operation; it stops at the bad one, whose verdict and those after it come from one-by-one retries.
    expect(ops).toEqual(['addMultipleToStore(14)', 'queryValidPaths(14)', ...Array(7).fill('addToStoreNar')]);
  });

  it('a NAR file that does not match its NarSize or NarHash or does not decompress never becomes valid', async () => {
    const u = upload('short', { narSize: 136 });
    await expect(importer.importPath(u.info, u.file)).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/NarSize 136/) });
    const junk = upload('junk');
    writeFileSync(junk.file, 'not zstd at all');
    await expect(importer.importPath(junk.info, junk.file)).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/zstd/) });
    expect(valid(u.info.storePath) || valid(junk.info.storePath)).toBe(false);
    // The right size, another NAR's hash (signed as claimed): refused by the importer's own check, which
    // holds the NAR's last bytes back until the hash is right (a large upload is checked only there).
    const other = formatSha256Nix32(createHash('sha256').update('another NAR').digest());
    const wrong = upload('wrong-hash', { narHash: other });
    await expect(importer.importPath(wrong.info, wrong.file)).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/^NAR hash mismatch: the upload is sha256:/) });
    expect(valid(wrong.info.storePath)).toBe(false);
    const after = upload('after-bad-files');
    await importer.importPath(after.info, after.file);
    expect(valid(after.info.storePath)).toBe(true);
  });
});
