/** Usage as the origin's routes record it: per user (x-eris-user), per cache the URL addressed, NAR bytes as sent. */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSigner, generateKeyPair } from '../../shared/signing.ts';
import { createMemoryStore } from '../../test/helpers/memory-store.ts';
import { composeOrigin, type ComposedOrigin } from '../server/compose.ts';
import { resolveConfig } from '../config/index.ts';
import { UsageDb } from './db.ts';
import { usageReport } from './report.ts';

const SECRET = 'usage-routes-secret-0123456789';

describe('usage recorded by the origin routes', () => {
  let dir: string;
  let origin: ComposedOrigin;
  afterEach(() => {
    origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts narinfo hits and misses and NAR bytes per user and cache; a 403 counts nothing', async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-usage-routes-'));
    const store = createMemoryStore([{ name: 'hello', contents: 'x'.repeat(1000) }]);
    const config = resolveConfig({
      file: {
        caches: [
          { name: 'default', publish: 'all', sign_key_paths: ['(k)'] },
          { name: 'team-a', publish: 'all', sign_key_paths: ['(k)'] },
        ],
        edgeSecret: SECRET,
        storeRoot: '/nonexistent-root',
        stateDir: dir,
      },
      env: {},
    });
    const signer = createSigner(generateKeyPair('k-1').secret);
    origin = composeOrigin(config, { store, signers: [signer] });
    await origin.ready;
    const get = async (path: string, user?: string, secret = SECRET) => {
      const headers: Record<string, string> = { 'x-eris-edge-secret': secret };
      if (user) headers['x-eris-user'] = user;
      const res = await origin.app.request(path, { headers });
      await res.arrayBuffer();
      return res.status;
    };
    const hello = store.paths.hello!;
    expect(await get(`/team-a/${hello.hashPart}.narinfo`, 'alice')).toBe(200);
    expect(await get(`/team-a/nar/${hello.hashPart}-${hello.narHash.slice(7)}.nar`, 'alice')).toBe(200);
    expect(await get(`/${'0'.repeat(32)}.narinfo`, 'bob')).toBe(404);
    expect(await get(`/nar/${hello.hashPart}-${hello.narHash.slice(7)}.nar`, 'bob')).toBe(200);
    expect(await get(`/${hello.hashPart}.narinfo`)).toBe(200); // no user: anonymous
    expect(await get(`/${hello.hashPart}.narinfo`, 'mallory', 'wrong-secret-0123456789')).toBe(403);
    origin.deps.usage!.flush();

    const db = UsageDb.open(dir, { readOnly: true });
    const byCache = (cache: string) => usageReport(db, { since: '1d', cache });
    expect(byCache('team-a').users).toEqual([{ user: 'alice', narinfoHits: 1, narinfoMisses: 0, nars: 1, narBytesSent: hello.narSize, pushes: 0, bytesReceived: 0 }]);
    expect(byCache('default').users).toEqual([
      { user: 'bob', narinfoHits: 0, narinfoMisses: 1, nars: 1, narBytesSent: hello.narSize, pushes: 0, bytesReceived: 0 },
      { user: null, narinfoHits: 1, narinfoMisses: 0, nars: 0, narBytesSent: 0, pushes: 0, bytesReceived: 0 },
    ]);
    expect(usageReport(db, { since: '1d' }).topPaths).toEqual([{ path: hello.storePath, nars: 2, bytes: 2 * hello.narSize }]);
    db.close();
    const metrics = origin.deps.metrics.render();
    expect(metrics).toContain('eris_cache_requests_total{cache="team-a",kind="narinfo_hit"} 1');
    expect(metrics).toContain('eris_cache_requests_total{cache="default",kind="narinfo_miss"} 1');
    expect(metrics).toContain(`eris_cache_nar_bytes_total{cache="default",direction="sent"} ${hello.narSize}`);
  });
});
