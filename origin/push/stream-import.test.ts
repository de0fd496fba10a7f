/**
 * Imports that follow their upload, against a real `nix-daemon --stdio` on a chroot store, with two origin
 * processes (`workers = 2`) played by two instances on one staging directory: the upload's start reached
 * one, the narinfo the other. The path becomes valid only once that narinfo is handed over, and is imported
 * once, by the stream.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../shared/fingerprint.ts';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import type { NarInfo } from '../../shared/narinfo.ts';
import { partsNarFile } from '../../shared/push-protocol.ts';
import { createSigner, generateKeyPair } from '../../shared/signing.ts';
import { fakeHashPart, regularFileNar } from '../../test/helpers/memory-store.ts';
import { until } from '../../test/helpers/faults.ts';
import { nixEnv, nixMissing } from '../../test/helpers/nix.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';
import { createImporter } from './import.ts';
import { createParts } from './parts.ts';
import { createStaging } from './staging.ts';
import { createStreamImports } from './stream-import.ts';

const cacheKey = createSigner(generateKeyPair('stream-test-1').secret);

describe.skipIf(nixMissing)('imports that follow their upload (real nix-daemon --stdio)', () => {
  const dir = tempDir('eris-stream-');
  const root = join(dir, 'root');
  // Made before the daemons start (three of them would otherwise create its database at once).
  spawnSync('nix-store', ['--store', root, '--init'], { env: nixEnv(), stdio: 'ignore' });
  const staging = createStaging({ dir, maxBytes: 100_000_000, ttlMs: 600_000 });
  const valid = (p: string) => spawnSync('nix-store', ['--store', root, '--check-validity', p], { env: nixEnv(), stdio: 'ignore' }).status === 0;
  /** One origin process: its parts, its importer (its own daemons), its streams; `said` its log messages. */
  function process_() {
    const parts = createParts({ dir: staging.dir, maxBytes: 100_000_000, usedBytes: async () => staging.usedBytes() });
    const importer = createImporter({ storeUri: root, storeDir: '/nix/store', trust: 'signature', trustedKeys: [cacheKey.publicKey] });
    const said: string[] = [];
    const streams = createStreamImports({ importer, follow: parts.follow, dir: staging.dir, isValid: async (p) => valid(p), log: (msg, f) => said.push(msg, JSON.stringify(f)) });
    return { parts, importer, streams, said };
  }
  const a = process_();
  const b = process_();
  afterAll(() => {
    a.importer.close();
    b.importer.close();
    staging.close();
  });

  it('the upload started in one process, the narinfo reached the other: handed to the stream, valid only then, imported once', async () => {
    const { nar } = regularFileNar(randomBytes(3_000_000));
    const storePath = `/nix/store/${fakeHashPart(`stream-${process.pid}`)}-big`;
    const narHash = formatSha256Nix32(createHash('sha256').update(nar).digest());
    const info: NarInfo = {
      storePath, url: `nar/${partsNarFile(narHash)}`, compression: 'none', fileHash: narHash, fileSize: nar.length, narHash, narSize: nar.length,
      references: [], sigs: [cacheKey.sign(fingerprint(storePath, narHash, nar.length, []))],
    };
    const u = await a.parts.begin('c', { storePath, narHash, narSize: nar.length });
    expect(a.streams.start('c', u.id, info)).toBe(true);
    const marker = join(staging.dir, 'c', `${partsNarFile(narHash)}.stream`);
    expect(existsSync(marker)).toBe(true);
    // Parts into both processes, as the cluster spreads connections.
    const PART = 700_000;
    for (let at = 0, k = 0; at < nar.length; at += PART, k++) {
      const bytes = nar.subarray(at, at + PART);
      await (k % 2 ? b : a).parts.part('c', u.id, at, createHash('sha256').update(bytes).digest('hex'), Readable.from([bytes]), bytes.length);
    }
    expect(await until(() => a.said.includes('push: streamed import waits for its narinfo'), 30_000, 20), a.said.join('\n')).toBe(true);
    expect(valid(storePath)).toBe(false);
    // Not this process's stream: nothing to hand over here.
    expect(await a.streams.handOff('c', info, Promise.resolve())).toBe(false);

    expect(await b.streams.handOff('c', info, Promise.resolve())).toBe(true);
    expect(valid(storePath)).toBe(true);
    expect(a.said).toContain('push: streamed import finished for another process');
    expect(a.said).not.toContain('push: streamed import dropped');
    expect(await until(() => !existsSync(marker), 10_000, 20)).toBe(true);
    expect(existsSync(join(staging.dir, 'c', `${partsNarFile(narHash)}.go`))).toBe(false);
  }, 60_000);
});
