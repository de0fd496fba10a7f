/**
 * The import step alone, per path (issue #23's "remaining per-path cost"): N one-file paths imported into a
 * fresh chroot store (a) one `nix copy --from file://…` process each (the old importer), (b) one AddToStoreNar
 * each over one daemon connection, (c) all in one AddMultipleToStore. No HTTP, no verification.
 *   node bench/import-micro.ts [N]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fingerprint } from '../shared/fingerprint.ts';
import { formatSha256Nix32 } from '../shared/hash.ts';
import { renderNarInfo } from '../shared/narinfo.ts';
import { encodeNix32 } from '../shared/nix32.ts';
import { createSigner, generateKeyPair } from '../shared/signing.ts';
import { connectDaemon, daemonTarget, type NarToAdd } from '../origin/nix-daemon/index.ts';
import { fakeHashPart, regularFileNar } from '../test/helpers/memory-store.ts';
import { NIX_FLAGS, nixEnv } from '../test/helpers/nix.ts';

const N = Number(process.argv[2] ?? 100);
const dir = mkdtempSync(join(tmpdir(), 'eris-import-micro-'));
const key = createSigner(generateKeyPair('micro-1').secret);
const opts = { 'trusted-public-keys': key.publicKey, 'require-sigs': 'true' };

function paths(tag: string): (NarToAdd & { nar0: Buffer })[] {
  return Array.from({ length: N }, (_, i) => {
    const path = `/nix/store/${fakeHashPart(`${tag}-${i}-${process.pid}`)}-micro-${i}`;
    const { nar } = regularFileNar(Buffer.from(`${tag} ${i}\n`.repeat(200)));
    const hex = createHash('sha256').update(nar).digest('hex');
    const sig = key.sign(fingerprint(path, formatSha256Nix32(Buffer.from(hex, 'hex')), nar.length, []));
    return { nar0: nar, info: { path, deriver: '', narHash: hex, references: [], registrationTime: 0, narSize: nar.length, ultimate: false, sigs: [sig], ca: '' }, nar: () => Readable.from([nar]) };
  });
}

async function main() {
  const out: string[] = [];
  // (a) the old way, a process per path (fewer paths: it is slow).
  const nOld = Math.min(N, 30);
  const rootA = join(dir, 'a');
  const olds = paths('a').slice(0, nOld);
  const t0 = performance.now();
  for (const p of olds) {
    const c = join(dir, `cache-${encodeNix32(createHash('sha256').update(p.info.path).digest().subarray(0, 8))}`);
    mkdirSync(join(c, 'nar'), { recursive: true });
    const fh = encodeNix32(createHash('sha256').update(p.nar0).digest());
    writeFileSync(join(c, 'nar', `${fh}.nar`), p.nar0);
    writeFileSync(join(c, 'nix-cache-info'), 'StoreDir: /nix/store\n');
    writeFileSync(join(c, `${p.info.path.slice(11, 43)}.narinfo`), renderNarInfo({ storePath: p.info.path, url: `nar/${fh}.nar`, compression: 'none', narHash: formatSha256Nix32(Buffer.from(p.info.narHash, 'hex')), narSize: p.info.narSize, references: [], sigs: p.info.sigs }));
    const r = spawnSync('nix', [...NIX_FLAGS, 'copy', '--from', `file://${c}`, '--to', rootA, '--no-recursive', p.info.path, '--option', 'substituters', '',
      '--option', 'trusted-public-keys', key.publicKey], { env: nixEnv({ XDG_CACHE_HOME: join(dir, 'xdg') }), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
  }
  const a = (performance.now() - t0) / nOld;
  out.push(`nix copy --from file:// per path: ${a.toFixed(1)} ms a path (${nOld} paths)`);

  for (const [label, multi] of [['AddToStoreNar per path, one connection', false], ['one AddMultipleToStore', true]] as const) {
    const root = join(dir, multi ? 'c' : 'b');
    const conn = await connectDaemon(daemonTarget(root, opts));
    const ps = paths(multi ? 'c' : 'b');
    const t = performance.now();
    if (multi) await conn.addMultipleToStore(ps);
    else for (const p of ps) await conn.addToStoreNar(p);
    const ms = (performance.now() - t) / N;
    conn.close();
    out.push(`${label}: ${ms.toFixed(2)} ms a path (${N} paths), ${(a / ms).toFixed(0)}x faster`);
  }
  console.log(`load average ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ')[0]}`);
  console.log(out.join('\n'));
  rmSync(dir, { recursive: true, force: true });
}
main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
