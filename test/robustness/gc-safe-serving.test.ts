/**
 * GC-safe serving with real Nix 2.8 on a chroot store: a client downloads a
 * 256 MiB NAR (256 files of 1 MiB, so the stream opens files as it goes) at a
 * limited rate while `nix-store --gc` runs on the store; the path is otherwise
 * dead (the cache publishes the whole store, nothing roots it). The origin's
 * temporary root keeps it: every byte arrives and hashes to NarHash. Once the
 * download has ended, a GC collects the path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { nixEnv, nixMissing, hashOf } from '../helpers/nix.ts';
import { addRandomTree, storeHas, until } from '../helpers/faults.ts';
import { EDGE_SECRET, startTestOrigin, type TestOrigin } from '../helpers/origin.ts';
import { runProcess } from '../helpers/processes.ts';

const MiB = 1024 * 1024;
const RATE = 24 * MiB; // bytes per second the client reads

/** `nix-store --gc` on the chroot store; resolves with its output. */
async function collectGarbage(root: string): Promise<{ code: number | null; out: string }> {
  const r = await runProcess('nix-store', ['--store', root, '--gc'], { env: nixEnv(), timeoutMs: 300_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

describe.skipIf(nixMissing)('GC-safe serving', () => {
  let dir: string;
  let root: string;
  let big: string;
  let origin: TestOrigin;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-gc-safe-'));
    root = join(dir, 'root');
    // Not rooted anywhere: the first GC would take it.
    big = addRandomTree(root, dir, 'big-tree', 256, MiB);
    rmSync(join(dir, 'big-tree'), { recursive: true });
    origin = await startTestOrigin(root);
  }, 180_000);

  afterAll(async () => {
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a slow download survives nix-store --gc and is exact; the path is collected once it ended', async () => {
    const narinfo = await (await origin.get(`/${hashOf(big)}.narinfo`)).text();
    const url = /^URL: (.*)$/m.exec(narinfo)![1]!;
    const narHash = /^NarHash: sha256:(.*)$/m.exec(narinfo)![1]!;
    const narSize = Number(/^NarSize: (\d+)$/m.exec(narinfo)![1]);
    expect(narSize).toBeGreaterThan(256 * MiB);

    const hash = createHash('sha256');
    let received = 0;
    let ended = false;
    // Throttled until the collector has finished (the point of the test), then read at full speed.
    let throttled = true;
    let resume = () => {};
    const started = Date.now();
    const download = new Promise<void>((resolve, reject) => {
      const req = request(`${origin.url}/${url}`, { headers: { 'x-eris-edge-secret': EDGE_SECRET } }, (res) => {
        expect(res.statusCode).toBe(200);
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          received += chunk.length;
          // Read no faster than RATE: pause until the budget allows the bytes read so far.
          const ahead = received / RATE - (Date.now() - started) / 1000;
          if (throttled && ahead > 0) {
            res.pause();
            const timer = setTimeout(() => res.resume(), ahead * 1000);
            resume = () => {
              clearTimeout(timer);
              res.resume();
            };
          }
        });
        res.on('end', () => {
          ended = true;
          resolve();
        });
        res.on('error', reject);
        res.on('aborted', () => reject(new Error(`download broke off after ${received} bytes`)));
      });
      req.on('error', reject);
      req.end();
    });
    const failed = download.then(() => undefined, (e: Error) => e);

    // The collector runs while the client is well into the NAR (files already opened and files still to open).
    expect(await until(() => received > 24 * MiB || ended, 60_000)).toBe(true);
    const gcDuring = await collectGarbage(root);
    expect(gcDuring.code, gcDuring.out).toBe(0);
    // Otherwise the test proved nothing: the GC must have finished while the body was still streaming.
    expect(ended, `the download ended before the GC did (${received} bytes): read slower`).toBe(false);
    expect(storeHas(root, big)).toBe(true);
    throttled = false;
    resume();

    const error = await failed;
    expect(error?.message).toBeUndefined();
    expect(received).toBe(narSize);
    expect(formatSha256Nix32(hash.digest())).toBe(`sha256:${narHash}`);

    // Released when the response ended: a later GC takes the path (the origin's epoch closes within seconds).
    let last = '';
    const collected = await until(async () => {
      last = (await collectGarbage(root)).out;
      return !storeHas(root, big);
    }, 30_000, 500);
    expect(collected, `still valid after the download; last GC said:\n${last}`).toBe(true);
  }, 180_000);
});
