/**
 * Read buffers are reused across downloads once the socket has taken them:
 * concurrent downloads of a multi-MiB NAR must still each get exactly Nix's bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNarInfo } from '../../shared/narinfo.ts';
import { get } from 'node:http';
import { EDGE_SECRET, startTestOrigin, type TestOrigin } from '../../test/helpers/origin.ts';
import { hashOf, narDump, nixEnv, nixMissing, NIX_FLAGS } from '../../test/helpers/nix.ts';

function slowDownload(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { 'x-eris-edge-secret': EDGE_SECRET } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => {
        parts.push(d);
        res.pause();
        setTimeout(() => res.resume(), 2);
      });
      res.on('end', () => resolve(Buffer.concat(parts)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error('slow download timed out')));
  });
}

describe.skipIf(nixMissing)('concurrent NAR downloads', () => {
  let dir: string;
  let origin: TestOrigin;
  let path: string;
  let root: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-concurrent-'));
    const src = join(dir, 'eris-big-random');
    writeFileSync(src, randomBytes(24 * 1024 * 1024 + 3)); // more than loopback socket buffers hold, and a tail
    path = execFileSync('nix-store', ['--add', src], { env: nixEnv(), encoding: 'utf8' }).trim();
    root = join(dir, 'root');
    execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--to', root, path], { env: nixEnv(), stdio: 'pipe' });
    origin = await startTestOrigin(root);
  });
  afterAll(async () => {
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives each of 12 concurrent downloads (some abandoned) exactly the NAR', async () => {
    const expected = narDump(path, root);
    const info = parseNarInfo(await (await origin.get(`/${hashOf(path)}.narinfo`)).text());
    for (let round = 0; round < 3; round++) {
      const downloads = Array.from({ length: 12 }, async (_, i) => {
        // Slow readers fill their socket buffers, so the origin's writes wait in memory: a buffer reused
        // before the socket has taken it would corrupt their bytes.
        if (i % 4 === 1) return slowDownload(origin.url + '/' + info.url);
        const res = await origin.get('/' + info.url);
        if (i % 4 === 3) {
          // Abandon after the first chunk: its buffers go back to the pool (or not) while others stream.
          const reader = res.body!.getReader();
          await reader.read();
          await reader.cancel();
          return null;
        }
        return Buffer.from(await res.arrayBuffer());
      });
      for (const body of await Promise.all(downloads)) if (body) expect(body.equals(expected)).toBe(true);
    }
  });
});
