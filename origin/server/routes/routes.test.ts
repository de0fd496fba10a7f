/**
 * Every origin route in-process: the app from the composition root over an
 * in-memory store, asked with app.request() — no Nix, no socket. What Nix
 * itself says about a real store is checked in app.test.ts; here, what each
 * route answers for each kind of request.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { parseNarInfo } from '../../../shared/narinfo.ts';
import { fingerprint } from '../../../shared/fingerprint.ts';
import { createSigner, createVerifier, generateKeyPair } from '../../../shared/signing.ts';
import { realisationFingerprint, type Realisation } from '../../../shared/realisation.ts';
import { storePathBaseName } from '../../../shared/store-path.ts';
import { createMemoryStore, type MemoryStore } from '../../../test/helpers/memory-store.ts';
import { EDGE_SECRET, inProcessOrigin, type InProcessOrigin } from '../../../test/helpers/origin.ts';

const DRV_HASH = `sha256:${'ab'.repeat(32)}`;

describe('origin routes over an in-memory store', () => {
  let store: MemoryStore;
  let origin: InProcessOrigin;
  const hash = (name: string) => store.paths[name]!.hashPart;

  beforeEach(() => {
    store = createMemoryStore([
      { name: 'leaf', contents: 'leaf\n' },
      { name: 'top', contents: 'x'.repeat(3000), executable: true, references: ['leaf', 'top'], deriver: `${'d'.repeat(32)}-top.drv` },
    ]);
    origin = inProcessOrigin(store);
  });

  it('answers nix-cache-info with store dir, mass query and the configured priority', async () => {
    const res = await origin.get('/nix-cache-info');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/x-nix-cache-info');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(await res.text()).toBe('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    const other = inProcessOrigin(store, { priority: 7 });
    expect(await (await other.get('/nix-cache-info')).text()).toBe('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 7\n');
  });

  it('serves a narinfo with relative references, the deriver and a signature over the fingerprint', async () => {
    const top = store.paths.top!;
    const res = await origin.get(`/${hash('top')}.narinfo`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/x-nix-narinfo');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    const info = parseNarInfo(await res.text());
    expect(info).toMatchObject({
      storePath: top.storePath,
      url: `nar/${top.hashPart}-${top.narHash.slice(7)}.nar`,
      compression: 'none',
      narHash: top.narHash,
      narSize: top.narSize,
      references: top.references.map(storePathBaseName),
      deriver: `${'d'.repeat(32)}-top.drv`,
    });
    expect(info.references).toEqual([storePathBaseName(store.paths.leaf!.storePath), storePathBaseName(top.storePath)].sort());
    const verifier = createVerifier([origin.publicKey]);
    expect(verifier.verify(fingerprint(info.storePath, info.narHash, info.narSize, top.references), info.sigs)).toBe(true);
    expect(createVerifier([generateKeyPair('eris-test-1').public]).verify(fingerprint(info.storePath, info.narHash, info.narSize, top.references), info.sigs)).toBe(false);
  });

  it('keeps signatures already in the store, except an old one by a key name it signs with', async () => {
    const fp = (p: MemoryStore['paths'][string]) => fingerprint(p.storePath, p.narHash, p.narSize, p.references);
    const other = createSigner(generateKeyPair('other-cache-1').secret);
    const stale = createSigner(generateKeyPair('eris-test-1').secret); // our name, another key
    const p = store.add({ name: 'signed', contents: 'signed\n' });
    p.sigs = [other.sign(fp(p)), stale.sign(fp(p))];
    const info = parseNarInfo(await (await origin.get(`/${p.hashPart}.narinfo`)).text());
    expect(info.sigs).toHaveLength(2);
    expect(info.sigs[0]).toBe(p.sigs[0]);
    expect(createVerifier([origin.publicKey]).verify(fp(p), [info.sigs[1]!])).toBe(true);
  });

  it('serves the .ls listing of a path as JSON', async () => {
    const res = await origin.get(`/${hash('top')}.ls`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ version: 1, root: { type: 'regular', size: 3000, executable: true, narOffset: 128 } });
    // The listing's offset points at the file's bytes inside the NAR the route serves.
    const info = parseNarInfo(await (await origin.get(`/${hash('top')}.narinfo`)).text());
    const nar = Buffer.from(await (await origin.get('/' + info.url)).arrayBuffer());
    expect(nar.subarray(128, 128 + 3000).toString()).toBe('x'.repeat(3000));
    expect(nar.length).toBe(info.narSize);
  });

  it('serves a NAR whole and as a byte range, and 404 for another NAR hash of the same path', async () => {
    const top = store.paths.top!;
    const url = `/nar/${top.hashPart}-${top.narHash.slice(7)}.nar`;
    const whole = await origin.get(url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(top.narSize));
    expect(Buffer.from(await whole.arrayBuffer()).equals(top.nar)).toBe(true);
    const part = await origin.get(url, { headers: { Range: 'bytes=8-23' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 8-23/${top.narSize}`);
    expect(Buffer.from(await part.arrayBuffer()).toString()).toBe('nix-archive-1\0\0\0');
    expect((await origin.get(`/nar/${top.hashPart}-${'0'.repeat(52)}.nar`)).status).toBe(404);
  });

  it('serves build logs, 404 for a derivation without one, 400 for a malformed name', async () => {
    const drv = `${'d'.repeat(32)}-top.drv`;
    store.logs.set(drv, 'building top\ndone\n');
    const res = await origin.get(`/log/${drv}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(await res.text()).toBe('building top\ndone\n');
    const head = await origin.get(`/log/${drv}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    expect((await origin.get(`/log/${'0'.repeat(32)}-none.drv`)).status).toBe(404);
    for (const bad of ['/log/top.drv', `/log/${'d'.repeat(32)}-top`, '/log/..%2F..%2Fetc%2Fpasswd', `/log/${'d'.repeat(31)}`, `/log/${'d'.repeat(32)}-a?/b.drv`]) {
      expect({ bad, status: (await origin.get(bad)).status }).toEqual({ bad, status: 400 });
    }
  });

  it('serves the log of a name with every character Nix allows, as Nix sends it (a ? unescaped), and by hash alone', async () => {
    const drv = `${'f'.repeat(32)}-a+b-c.d_e?f=g.drv`;
    store.logs.set(drv, 'odd log\n');
    for (const url of [`/log/${drv}`, `/log/${drv.replace('?', '%3F').replace('+', '%2B')}`, `/log/${'f'.repeat(32)}`]) {
      const res = await origin.get(url);
      expect({ url, status: res.status, body: await res.text() }).toEqual({ url, status: 200, body: 'odd log\n' });
    }
    expect((await origin.get(`/log/${'f'.repeat(32)}`, { method: 'HEAD' })).status).toBe(200);
    // The same hash with another name is not that derivation; an unknown hash has no log.
    expect((await origin.get(`/log/${'f'.repeat(32)}-a+b-c.d_e.drv`)).status).toBe(404);
    expect((await origin.get(`/log/${'0'.repeat(32)}`)).status).toBe(404);
  });

  it('serves a realisation signed over Nix\'s fingerprint, 404 for an unknown one, 400 for a malformed id', async () => {
    const r: Realisation = { id: `${DRV_HASH}!out`, outPath: storePathBaseName(store.paths.top!.storePath), signatures: [], dependentRealisations: {} };
    store.realisations.set(r.id, r);
    const res = await origin.get(`/realisations/${r.id}.doi`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as Realisation;
    expect({ ...body, signatures: [] }).toEqual(r);
    expect(createVerifier([origin.publicKey]).verify(realisationFingerprint(body), body.signatures)).toBe(true);
    expect((await origin.get(`/realisations/sha256:${'0'.repeat(64)}!out.doi`)).status).toBe(404);
    for (const bad of ['/realisations/sha256:abc!out.doi', '/realisations/x.doi', `/realisations/${r.id}`]) {
      expect({ bad, status: (await origin.get(bad)).status }).toEqual({ bad, status: 400 });
    }
  });

  it('says 404 for unknown paths and routes, 400 for malformed names, each in one no-store line', async () => {
    const cases: [string, number][] = [
      [`/${'0'.repeat(32)}.narinfo`, 404],
      [`/${'0'.repeat(32)}.ls`, 404],
      ['/nix/store', 404],
      ['/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo', 400],
      ['/abc.narinfo', 400],
      [`/${hash('top')}x.narinfo`, 400],
      ['/abc.ls', 400],
      ['/nar/x.nar', 400],
      [`/nar/${hash('top')}-${'0'.repeat(52)}.nar.zst`, 400],
    ];
    for (const [path, status] of cases) {
      const res = await origin.get(path);
      expect({ path, status: res.status }).toEqual({ path, status });
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      expect((await res.text()).split('\n').filter(Boolean)).toHaveLength(1);
    }
  });

  it('refuses every path without the right edge secret (403), before touching the store', async () => {
    store.failure = new Error('the store must not be asked');
    for (const path of ['/nix-cache-info', `/${hash('top')}.narinfo`, `/${hash('top')}.ls`, '/v1/public-key', '/metrics', '/nope']) {
      for (const secret of [null, '', 'wrong-secret-wrong-secret', EDGE_SECRET.slice(0, -1), EDGE_SECRET + 'x']) {
        const res = await origin.get(path, { secret });
        // /metrics also takes a Bearer token (metrics_token_file), so it says 401 and which scheme.
        expect({ path, secret, status: res.status }).toEqual({ path, secret, status: path === '/metrics' ? 401 : 403 });
        expect(res.headers.get('cache-control')).toBe('private, no-store');
      }
    }
  });

  it('answers 503 with Retry-After while the store DB is locked, and 500 — never 404 — when the store fails', async () => {
    store.busy = true;
    const busy = await origin.get(`/${hash('top')}.narinfo`);
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    store.busy = false;
    store.failure = new Error('disk on fire');
    for (const path of [`/${hash('top')}.narinfo`, `/realisations/${DRV_HASH}!out.doi`, '/health']) {
      const res = await origin.get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 500 });
      expect(await res.text()).toBe('internal error\n');
    }
  });

  it('answers 500 for a NAR whose files are gone while its row stays, 404 once the row is gone too', async () => {
    const leaf = store.paths.leaf!;
    const url = `/nar/${leaf.hashPart}-${leaf.narHash.slice(7)}.nar`;
    store.gone.add(leaf.storePath);
    expect((await origin.get(url)).status).toBe(500);
    store.remove('leaf');
    expect((await origin.get(url)).status).toBe(404);
    expect((await origin.get(`/${leaf.hashPart}.narinfo`)).status).toBe(404);
  });

  it('serves the public key, the version and health', async () => {
    expect(await (await origin.get('/v1/public-key')).text()).toBe(origin.publicKey + '\n');
    expect(await (await origin.get('/v1/version')).json()).toMatchObject({ name: 'eris', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(await (await origin.get('/health')).text()).toBe('ok\n');
  });
});
