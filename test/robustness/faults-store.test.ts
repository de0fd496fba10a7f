/**
 * Faults in the store under a running stack (`eris serve` + `wrangler dev`):
 * paths garbage-collected between narinfo and NAR or while the NAR streams,
 * and the store DB locked by a writer — in WAL mode (Nix's default) and in
 * rollback-journal mode (`use-sqlite-wal = false`), where a writer really
 * does block readers.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { hashOf, NIX_FLAGS, nixEnv } from '../helpers/nix.ts';
import { formatSha256Nix32 } from '../../shared/hash.ts';
import { addRandomTree, copyStore, holdExclusive, sleep, sqlite, until } from '../helpers/faults.ts';
import { narInfoOf, useStack } from '../helpers/stack.ts';

const fixture = inject('fixture');

/** Reads a body to the end: 'clean' with its bytes, or 'broken' if the connection broke. */
async function drain(res: Response, firstChunkHook?: () => void): Promise<{ outcome: 'clean' | 'broken'; bytes: Buffer }> {
  const reader = res.body!.getReader();
  const parts: Uint8Array[] = [];
  try {
    for (let first = true; ; first = false) {
      const { done, value } = await reader.read();
      if (done) return { outcome: 'clean', bytes: Buffer.concat(parts) };
      parts.push(value);
      if (first) firstChunkHook?.();
    }
  } catch {
    return { outcome: 'broken', bytes: Buffer.concat(parts) };
  }
}

const narHashOf = (b: Buffer) => formatSha256Nix32(createHash('sha256').update(b).digest());

describe.skipIf(!fixture)('faults in the store: garbage collection and a locked DB', () => {
  let root: string;
  let db: string;
  const trees: Record<string, string> = {};
  const s = useStack(() => ({
    root(dir) {
      root = copyStore(fixture!.root, join(dir, 'root'));
      db = join(root, 'nix/var/nix/db/db.sqlite');
      for (const name of ['gc-between', 'row-gone', 'files-gone']) trees[name] = addRandomTree(root, dir, name, 4, 4096);
      trees.streaming = addRandomTree(root, dir, 'streaming', 64, 1 << 20);
      return root;
    },
  }));

  const topNarInfo = () => s.get(`/${hashOf(fixture!.top)}.narinfo`);
  const nixStoreDelete = (path: string) =>
    execFileSync('nix', [...NIX_FLAGS, 'store', 'delete', '--store', root, path], { env: nixEnv(), stdio: 'pipe' });

  describe('a path garbage-collected', () => {
    it('between narinfo and NAR (nix store delete): 404, never a 200', async () => {
      const path = trees['gc-between']!;
      const info = await narInfoOf(s, path);
      nixStoreDelete(path);
      const nar = await s.get('/' + info.url);
      expect(nar.status).toBe(404);
      expect(nar.headers.get('cache-control')).toBe('private, no-store');
      expect((await s.get(`/${hashOf(path)}.narinfo`)).status).toBe(404);
      expect((await topNarInfo()).status).toBe(200);
    });

    it('half-way as Nix does it — row deleted, files still there: 404', async () => {
      const path = trees['row-gone']!;
      const info = await narInfoOf(s, path);
      sqlite(db, `DELETE FROM ValidPaths WHERE path = '${path}'`);
      expect((await s.get('/' + info.url)).status).toBe(404);
      expect((await topNarInfo()).status).toBe(200);
    });

    // The NAR route looks at the files before it sends 200: gone files with a still-valid row are a broken
    // store — a 500 (Nix retries it), never a 200 that breaks off, nor a 404 that Nix would remember as a miss.
    // (With the row gone too, a GC in progress, it is the 404 above.)
    it('files removed while the row is still valid: 500 before any 200, never 404', async () => {
      const path = trees['files-gone']!;
      const info = await narInfoOf(s, path);
      execFileSync('rm', ['-rf', join(root, path)]);
      const res = await s.get('/' + info.url);
      expect(res.status).toBe(500);
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      expect(await res.text()).toBe('internal error\n');
      expect((await topNarInfo()).status).toBe(200);
    });

    // The origin holds Nix's temporary GC root while the NAR streams (store/temp-roots.ts): Nix refuses to
    // delete the path, the bytes arrive exactly; once the response has ended the path can go.
    it('while the NAR streams: Nix refuses to delete it and the bytes are exactly the NAR; deleted after, 404', async () => {
      const path = trees.streaming!;
      const info = await narInfoOf(s, path);
      const res = await s.get('/' + info.url);
      expect(res.status).toBe(200);
      let refusal = '';
      const { outcome, bytes } = await drain(res, () => {
        try {
          nixStoreDelete(path);
        } catch (e) {
          refusal = String((e as { stderr?: Buffer }).stderr ?? e);
        }
      });
      expect(refusal).toMatch(/still alive/);
      expect(outcome).toBe('clean');
      expect({ size: bytes.length, hash: narHashOf(bytes) }).toEqual({ size: info.narSize, hash: info.narHash });
      expect((await topNarInfo()).status).toBe(200);
      // The root goes within seconds of the response's end (its daemon connection closes).
      expect(await until(() => {
        try {
          nixStoreDelete(path);
          return true;
        } catch {
          return false;
        }
      }, 20_000, 500)).toBe(true);
      expect((await s.get('/' + info.url)).status).toBe(404);
    });
  });

  describe('the store DB locked by a writer', () => {
    /** Time of one narinfo request through the edge. */
    async function timed(path = `/${hashOf(fixture!.top)}.narinfo`) {
      const t = performance.now();
      const res = await s.get(path);
      const body = await res.text();
      return { status: res.status, ms: Math.round(performance.now() - t), retryAfter: res.headers.get('retry-after'), cc: res.headers.get('cache-control'), body };
    }

    it('WAL (Nix\'s default): a writer holding BEGIN EXCLUSIVE for 2 s does not block reads at all', async () => {
      expect(sqlite(db, 'PRAGMA journal_mode').trim()).toBe('wal');
      const h = holdExclusive(db, 2);
      await h.locked;
      const during = [];
      for (let i = 0; i < 5; i++) during.push(await timed());
      await h.released;
      for (const r of during) {
        expect(r.status).toBe(200);
        expect(r.ms).toBeLessThan(1000);
      }
    });

    describe('rollback journal (use-sqlite-wal = false): a writer blocks readers', () => {
      beforeAll(async () => {
        await s.killOrigin();
        expect(sqlite(db, 'PRAGMA journal_mode = TRUNCATE').trim()).toBe('truncate');
        await s.restartOrigin();
      });

      it('a lock shorter than db_busy_timeout_ms (2 s): the request waits and succeeds', async () => {
        const h = holdExclusive(db, 1.2);
        await h.locked;
        const r = await timed();
        await h.released;
        expect(r.status).toBe(200);
        expect(r.ms).toBeGreaterThan(300); // it really waited for the lock
      });

      it('a lock longer than that: a retryable 503 with Retry-After and no-store, then 200 once released', async () => {
        const h = holdExclusive(db, 4);
        await h.locked;
        const r = await timed();
        expect(r.status).toBe(503);
        expect(r.retryAfter).toBe('1');
        expect(r.cc).toBe('private, no-store');
        expect(r.body).toMatch(/busy/);
        await h.released;
        expect((await timed()).status).toBe(200);
      });

      // node:sqlite is synchronous: SQLite's own busy wait would stop the whole event loop. The store sets
      // busy_timeout to 0 and retries SQLITE_BUSY with pauses (setTimeout) up to db_busy_timeout_ms instead.
      it('requests that need no DB are answered at once while a query waits for the lock', async () => {
        const h = holdExclusive(db, 2.5);
        await h.locked;
        const waiting = timed(); // blocks on the lock
        await sleep(100);
        const info = await timed('/nix-cache-info'); // (/health asks the DB, so it waits too)
        await waiting;
        await h.released;
        expect(info.status).toBe(200);
        expect(info.ms).toBeLessThan(500);
      });
    });
  });
});
