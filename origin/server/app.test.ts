/**
 * The origin against a chroot store built by real Nix (test/global-setup.ts):
 * what it serves must be exactly what Nix itself says about the store.
 */
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { parseNarInfo } from '../../shared/narinfo.ts';
import { fingerprint } from '../../shared/fingerprint.ts';
import { createVerifier } from '../../shared/signing.ts';
import { parseSha256, formatSha256Nix32 } from '../../shared/hash.ts';
import { storePathBaseName } from '../../shared/store-path.ts';
import { startTestOrigin, type TestOrigin } from '../../test/helpers/origin.ts';
import { hashOf, narDump, nixEnv, NIX_FLAGS } from '../../test/helpers/nix.ts';

const fixture = inject('fixture');

describe.skipIf(!fixture)('origin on a real Nix store', () => {
  let origin: TestOrigin;
  let pathInfo: { path: string; narHash: string; narSize: number; references: string[]; deriver?: string }[];

  beforeAll(async () => {
    origin = await startTestOrigin(fixture!.root);
    pathInfo = JSON.parse(execFileSync('nix', [...NIX_FLAGS, 'path-info', '--json', '--store', fixture!.root, '-r', fixture!.top], { env: nixEnv(), encoding: 'utf8' }));
  });
  afterAll(() => origin?.close());

  it('answers nix-cache-info with the store dir, mass query and priority', async () => {
    const res = await origin.get('/nix-cache-info');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    expect(res.headers.get('cache-control')).toBe('private, no-store');
  });

  it('serves narinfo that matches nix path-info and carries a signature Nix would accept', async () => {
    expect(pathInfo).toHaveLength(3);
    const verifier = createVerifier([origin.publicKey]);
    for (const p of pathInfo) {
      const res = await origin.get(`/${hashOf(p.path)}.narinfo`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/x-nix-narinfo');
      const info = parseNarInfo(await res.text());
      expect(info.storePath).toBe(p.path);
      expect(info.compression).toBe('none');
      expect(info.narHash).toBe(formatSha256Nix32(parseSha256(p.narHash)));
      expect(info.narSize).toBe(p.narSize);
      expect(info.references).toEqual(p.references.map(storePathBaseName));
      expect(info.deriver).toBe(p.deriver ? storePathBaseName(p.deriver) : undefined);
      expect(verifier.verify(fingerprint(info.storePath, info.narHash, info.narSize, p.references), info.sigs)).toBe(true);
    }
  });

  it('streams NARs byte for byte equal to nix store dump-path, with Content-Length', async () => {
    for (const p of pathInfo) {
      const info = parseNarInfo(await (await origin.get(`/${hashOf(p.path)}.narinfo`)).text());
      const res = await origin.get('/' + info.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/x-nix-nar');
      expect(res.headers.get('content-length')).toBe(String(p.narSize));
      expect(res.headers.get('content-encoding')).toBeNull();
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.equals(narDump(p.path, fixture!.root))).toBe(true);
    }
  });

  it('answers the NAR URL forms of harmonia and nix-serve too', async () => {
    const p = pathInfo[0]!;
    const narHash = formatSha256Nix32(parseSha256(p.narHash)).slice(7);
    const harmonia = await origin.get(`/nar/${narHash}.nar?hash=${hashOf(p.path)}`);
    expect(harmonia.status).toBe(200);
    expect(Buffer.from(await harmonia.arrayBuffer()).length).toBe(p.narSize);
    const serve = await origin.get(`/nar/${hashOf(p.path)}-${narHash}.nar`);
    expect(serve.status).toBe(200);
    await serve.body?.cancel();
  });

  it('answers HEAD like GET without a body', async () => {
    const p = pathInfo[0]!;
    const info = parseNarInfo(await (await origin.get(`/${hashOf(p.path)}.narinfo`)).text());
    for (const path of ['/nix-cache-info', `/${hashOf(p.path)}.narinfo`, '/' + info.url, '/v1/public-key']) {
      const get = await origin.get(path);
      const getBody = Buffer.from(await get.arrayBuffer());
      const head = await origin.get(path, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(getBody.length));
      expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'));
      expect((await head.arrayBuffer()).byteLength).toBe(0);
    }
  });

  it('counts NAR responses in /metrics, HEAD included, and the bytes a GET sent', async () => {
    const p = pathInfo[0]!;
    const info = parseNarInfo(await (await origin.get(`/${hashOf(p.path)}.narinfo`)).text());
    const read = async () => {
      const text = await (await origin.get('/metrics')).text();
      const num = (re: RegExp) => Number(text.match(re)?.[1] ?? 0);
      return {
        requests: num(/^eris_requests_total\{route="nar",status="200"\} (\d+)$/m),
        bytes: num(/^eris_sent_bytes_total\{route="nar"\} (\d+)$/m),
        streams: num(/^eris_nar_stream_seconds_count (\d+)$/m),
      };
    };
    const before = await read();
    await (await origin.get('/' + info.url, { method: 'HEAD' })).arrayBuffer();
    await (await origin.get('/' + info.url)).arrayBuffer();
    // The stream is counted once the socket has taken the last byte, which may be just after the client has it.
    await vi.waitFor(async () => expect(await read()).toEqual({ requests: before.requests + 2, bytes: before.bytes + p.narSize, streams: before.streams + 1 }), { timeout: 5000, interval: 20 });
  });

  it('says 404 for paths it does not have and 400 for malformed names', async () => {
    const p = pathInfo[0]!;
    const narHash = formatSha256Nix32(parseSha256(p.narHash)).slice(7);
    const cases: [string, number][] = [
      ['/00000000000000000000000000000000.narinfo', 404],
      [`/nar/00000000000000000000000000000000-${narHash}.nar`, 404],
      [`/nar/${hashOf(p.path)}-${'0'.repeat(52)}.nar`, 404], // path exists, other contents
      ['/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo', 400],
      ['/abc.narinfo', 400],
      [`/${hashOf(p.path)}x.narinfo`, 400],
      [`/nar/${narHash}.nar`, 400],
      [`/nar/${narHash}.nar?hash=../../etc`, 400],
      ['/nar/x.nar', 400],
      [`/nar/${hashOf(p.path)}-${narHash}.nar.zst`, 400],
      ['/nix/store', 404],
      ['/nar/..%2F..%2Fetc%2Fpasswd', 400],
    ];
    for (const [path, status] of cases) {
      const res = await origin.get(path);
      expect({ path, status: res.status }).toEqual({ path, status });
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      const text = await res.text();
      expect(text.split('\n').filter(Boolean).length).toBeLessThanOrEqual(1);
    }
  });

  it('refuses requests without the edge secret, whatever the path', async () => {
    for (const path of ['/nix-cache-info', `/${hashOf(pathInfo[0]!.path)}.narinfo`, '/v1/public-key', '/nope']) {
      for (const secret of [null, '', 'wrong-secret-wrong-secret', 'test-edge-secret-012345678']) {
        const res = await origin.get(path, { secret });
        expect(res.status).toBe(403);
        expect(res.headers.get('cache-control')).toBe('private, no-store');
      }
    }
  });

  it('returns the public key and version', async () => {
    expect(await (await origin.get('/v1/public-key')).text()).toBe(origin.publicKey + '\n');
    const v = await (await origin.get('/v1/version')).json();
    expect(v).toMatchObject({ name: 'eris', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });
});
