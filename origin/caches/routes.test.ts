/**
 * Several caches on one origin, in-process over an in-memory store: each cache
 * answers only for its published set, signs only with its keys, has its own
 * Priority; unknown caches are 404; `/v1/caches` lists them.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { parseNarInfo } from '../../shared/narinfo.ts';
import { createSigner, generateKeyPair } from '../../shared/signing.ts';
import { storePathBaseName } from '../../shared/store-path.ts';
import type { Realisation } from '../../shared/realisation.ts';
import { createMemoryStore, type MemoryStore } from '../../test/helpers/memory-store.ts';
import { composeOrigin, type ComposedOrigin } from '../server/compose.ts';
import { resolveConfig } from '../config/index.ts';
import type { ClosureDb, NodeRow } from '../store/closure-db.ts';

const SECRET = 'caches-routes-secret-0123456789';

/** The store's paths and references as the DB would give them. */
function memoryClosureDb(store: MemoryStore): ClosureDb {
  const rows = () => Object.values(store.paths).map((p, i): NodeRow => ({ id: i + 1, path: p.storePath, deriver: p.deriver ?? null, narSize: p.narSize }));
  return {
    byPath: (path) => rows().find((r) => r.path === path),
    referenceIds: (id) => {
      const all = rows();
      const p = Object.values(store.paths)[id - 1]!;
      return p.references.map((r) => all.find((x) => x.path === r)!.id);
    },
    byId: (id) => rows()[id - 1],
    allPaths: () => rows(),
    allRefs: () => Object.values(store.paths).flatMap((p, i) => p.references.map((r) => ({ referrer: i + 1, reference: rows().find((x) => x.path === r)!.id }))),
    dataVersion: () => Object.keys(store.paths).length,
    snapshot: (fn) => fn(),
    close: () => {},
  };
}

describe('several caches on one origin', () => {
  let store: MemoryStore;
  let origin: ComposedOrigin;
  const keys = { a: generateKeyPair('cache-a-1'), b: generateKeyPair('cache-b-1'), pub: generateKeyPair('public-1') };
  const get = (path: string) => origin.app.request(path, { headers: { 'x-eris-edge-secret': SECRET } });
  const hash = (n: string) => store.paths[n]!.hashPart;
  const narUrl = (n: string) => `nar/${hash(n)}-${store.paths[n]!.narHash.slice(7)}.nar`;

  beforeEach(async () => {
    const drv = (n: string) => `${createHash('sha256').update(n).digest('hex').slice(0, 32).replace(/[eotu]/g, '0')}-${n}.drv`;
    store = createMemoryStore([
      { name: 'libc' },
      { name: 'app-a', references: ['libc'], deriver: drv('app-a') },
      { name: 'app-b', references: ['libc'], deriver: drv('app-b') },
      // Signed in the DB by cache A's key (e.g. pushed after a build elsewhere): never shown by B.
      { name: 'secrets', sigs: [] },
      { name: 'uses-secrets', references: ['secrets', 'libc'], deriver: drv('uses-secrets') },
    ]);
    const p = (n: string) => store.paths[n]!.storePath;
    const config = resolveConfig({
      file: {
        caches: [
          { name: 'team-a', roots: [p('app-a')], sign_key_paths: ['(a)'], priority: 10 },
          { name: 'team-b', roots: [p('app-b'), p('uses-secrets')], exclude: ['secret*'], sign_key_paths: ['(b)'], priority: 20 },
          { name: 'public', publish: 'all', exclude: ['*secrets'], sign_key_paths: ['(pub)'] },
        ],
        defaultCache: 'public',
        edgeSecret: SECRET,
        storeRoot: '/nonexistent-root',
      },
      env: {},
    });
    origin = composeOrigin(config, {
      store,
      closureDb: memoryClosureDb(store),
      cacheSigners: { 'team-a': [createSigner(keys.a.secret)], 'team-b': [createSigner(keys.b.secret)], public: [createSigner(keys.pub.secret)] },
    });
    await origin.ready;
    const sigA = createSigner(keys.a.secret).sign('anything');
    store.paths.libc!.sigs.push(sigA, 'cache.nixos.org-1:abc');
  });

  it('answers each cache for its own set only; outside it exactly as for a path that does not exist', async () => {
    const absent = await get(`/team-b/${'0'.repeat(32)}.narinfo`);
    expect(absent.status).toBe(404);
    const absentBody = await absent.text();
    for (const [cache, name, ok] of [['team-a', 'app-a', true], ['team-a', 'libc', true], ['team-a', 'app-b', false], ['team-b', 'app-a', false],
      ['team-b', 'app-b', true], ['team-b', 'uses-secrets', false], ['team-b', 'secrets', false], ['public', 'app-a', true], ['public', 'secrets', false]] as const) {
      const res = await get(`/${cache}/${hash(name)}.narinfo`);
      expect({ cache, name, status: res.status }).toEqual({ cache, name, status: ok ? 200 : 404 });
      if (!ok) {
        expect(await res.text()).toBe(absentBody);
        expect((await get(`/${cache}/${narUrl(name)}`)).status).toBe(404);
        expect((await get(`/${cache}/${hash(name)}.ls`)).status).toBe(404);
      } else {
        expect((await get(`/${cache}/${narUrl(name)}`)).status).toBe(200);
        expect((await get(`/${cache}/${hash(name)}.ls`)).status).toBe(200);
      }
    }
  });

  it('signs with the cache\'s own keys only, dropping signatures any eris cache\'s key left in the DB', async () => {
    const sigsOf = async (path: string) => parseNarInfo(await (await get(path)).text()).sigs.map((s) => s.split(':')[0]);
    expect(await sigsOf(`/team-a/${hash('libc')}.narinfo`)).toEqual(['cache.nixos.org-1', 'cache-a-1']);
    expect(await sigsOf(`/team-b/${hash('libc')}.narinfo`)).toEqual(['cache.nixos.org-1', 'cache-b-1']);
    expect(await sigsOf(`/${hash('libc')}.narinfo`)).toEqual(['cache.nixos.org-1', 'public-1']);
  });

  it('serves the bare paths as the default cache, each cache with its Priority, 404 for unknown caches', async () => {
    expect(await (await get('/team-a/nix-cache-info')).text()).toBe('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 10\n');
    expect(await (await get('/team-b/nix-cache-info')).text()).toMatch(/Priority: 20\n$/);
    expect(await (await get('/nix-cache-info')).text()).toMatch(/Priority: 30\n$/);
    expect((await get(`/${hash('uses-secrets')}.narinfo`)).status).toBe(404);
    expect((await get(`/${hash('app-b')}.narinfo`)).status).toBe(200);
    expect(await (await get('/v1/public-key')).text()).toBe(keys.pub.public + '\n');
    for (const path of ['/nope/nix-cache-info', `/nope/${hash('libc')}.narinfo`, '/nar/nix-cache-info', '/v1/nix-cache-info', '/Team-A/nix-cache-info']) {
      expect({ path, status: (await get(path)).status }).toEqual({ path, status: path.startsWith('/nar/') ? 400 : 404 });
    }
    const list = await (await get('/v1/caches')).json();
    expect(list).toEqual({
      caches: [
        { name: 'team-a', priority: 10, publicKeys: [keys.a.public], default: false },
        { name: 'team-b', priority: 20, publicKeys: [keys.b.public], default: false },
        { name: 'public', priority: 30, publicKeys: [keys.pub.public], default: true },
      ],
    });
    expect((await origin.app.request('/v1/caches')).status).toBe(403);
  });

  it('serves build logs and realisations only for published paths', async () => {
    const drvA = storePathBaseName(store.paths['app-a']!.deriver!);
    store.logs.set(drvA, 'built app-a\n');
    expect((await get(`/team-a/log/${drvA}`)).status).toBe(200);
    expect((await get(`/team-b/log/${drvA}`)).status).toBe(404);
    expect((await get(`/team-b/log/${drvA.slice(0, 32)}-nothing.drv`)).status).toBe(404);
    const r: Realisation = { id: `sha256:${'ab'.repeat(32)}!out`, outPath: storePathBaseName(store.paths['app-a']!.storePath), signatures: [], dependentRealisations: {} };
    store.realisations.set(r.id, r);
    // publish = "all": the log of an excluded path's derivation is not published either.
    const drvU = storePathBaseName(store.paths['uses-secrets']!.deriver!);
    store.logs.set(drvU, 'built uses-secrets\n');
    expect((await get(`/log/${drvU}`)).status).toBe(404);
    expect((await get(`/log/${drvA}`)).status).toBe(200);
    expect((await get(`/team-a/realisations/${r.id}.doi`)).status).toBe(200);
    expect((await get(`/team-b/realisations/${r.id}.doi`)).status).toBe(404);
  });
});
