/**
 * End to end, as a user runs it: `eris serve` on a chroot store built by real
 * Nix, the Worker under `wrangler dev`, and a real `nix copy` through both.
 * The signing key is made by `nix-store --generate-binary-cache-key`.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addToken } from '../origin/tokens.ts';
import { generateKeyPair } from '../shared/signing.ts';
import { nixCopy, nixEnv } from './helpers/nix.ts';
import { startEdge, startOriginCli, type EdgeProc, type OriginProc } from './helpers/processes.ts';
import { startRecordingProxy, type RecordingProxy } from './helpers/recording-proxy.ts';

const fixture = inject('fixture');
const SECRET = 'e2e-edge-secret-0123456789abcdef';

describe.skipIf(!fixture)('nix copy through the Worker from a live store', () => {
  let dir: string;
  let origin: OriginProc;
  let edge: EdgeProc;
  let proxy: RecordingProxy;
  let publicKey: string;
  let netrc: string;
  let badNetrc: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eris-e2e-'));
    const sec = join(dir, 'cache.sec');
    const pub = join(dir, 'cache.pub');
    execFileSync('nix-store', ['--generate-binary-cache-key', 'e2e-cache-1', sec, pub], { env: nixEnv() });
    publicKey = readFileSync(pub, 'utf8').trim();
    origin = await startOriginCli({ root: fixture!.root, keyFiles: [sec], edgeSecret: SECRET });
    edge = await startEdge({ originUrl: origin.url, edgeSecret: SECRET });
    const token = await addToken({ mode: 'local', persistTo: edge.persistTo }, 'alice', { scopes: ['read'] });
    proxy = await startRecordingProxy(edge.url);
    netrc = join(dir, 'netrc');
    writeFileSync(netrc, `machine 127.0.0.1 login alice password ${token}\n`);
    badNetrc = join(dir, 'bad-netrc');
    writeFileSync(badNetrc, `machine 127.0.0.1 login alice password eris_not-a-real-token\n`);
  });

  afterAll(async () => {
    await proxy?.close();
    await edge?.stop();
    await origin?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('copies a closure with references, verified against the key Nix generated', async () => {
    const to = join(dir, 'client-ok');
    const r = await nixCopy({ from: proxy.url, to, paths: [fixture!.top], trustedKeys: publicKey, netrc });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    for (const p of fixture!.closure) expect(existsSync(join(to, p))).toBe(true);
    const narinfos = proxy.seen.filter((s) => s.url.endsWith('.narinfo') && s.status === 200);
    const nars = proxy.seen.filter((s) => s.url.startsWith('/nar/') && s.status === 200);
    expect(narinfos.length).toBeGreaterThanOrEqual(fixture!.closure.length);
    expect(nars.length).toBe(fixture!.closure.length);
    // Every response the client saw, errors included, forbids caching.
    for (const s of proxy.seen) expect({ url: s.url, cc: s.headers['cache-control'] }).toEqual({ url: s.url, cc: 'private, no-store' });
  });

  it('fails on the signature when the client trusts another key', async () => {
    const other = generateKeyPair('e2e-cache-1').public; // same name, other key
    const r = await nixCopy({ from: proxy.url, to: join(dir, 'client-wrong-key'), paths: [fixture!.top], trustedKeys: other, netrc });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/signature/i);
  });

  it('fails without credentials and with a wrong token', async () => {
    const before = proxy.seen.length;
    const none = await nixCopy({ from: proxy.url, to: join(dir, 'client-anon'), paths: [fixture!.top], trustedKeys: publicKey });
    expect(none.code).not.toBe(0);
    const wrong = await nixCopy({ from: proxy.url, to: join(dir, 'client-bad'), paths: [fixture!.top], trustedKeys: publicKey, netrc: badNetrc });
    expect(wrong.code).not.toBe(0);
    const answers = proxy.seen.slice(before);
    expect(answers.length).toBeGreaterThan(0);
    for (const s of answers) {
      expect(s.status).toBe(401);
      expect(s.headers['cache-control']).toBe('private, no-store');
    }
    expect(existsSync(join(dir, 'client-anon', fixture!.top))).toBe(false);
  });

  it('the origin port refuses a request without the edge secret', async () => {
    for (const path of ['/nix-cache-info', '/v1/public-key', `/${fixture!.top.slice(11, 43)}.narinfo`]) {
      const res = await fetch(origin.url + path, { signal: AbortSignal.timeout(5000) });
      expect(res.status).toBe(403);
    }
  });
});
