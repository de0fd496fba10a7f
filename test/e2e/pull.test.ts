/**
 * End to end, as a user runs it: `eris serve` on a chroot store built by real
 * Nix, the Worker under `wrangler dev`, and a real `nix copy` through both.
 * The signing key is made by `nix-store --generate-binary-cache-key`.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/signing.ts';
import { hashOf } from '../helpers/nix.ts';
import { nixCopyFrom } from '../helpers/stack.ts';
import { useSharedStack } from '../helpers/shared-stack.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';

const fixture = inject('fixture');

describe.skipIf(!fixture)('nix copy through the Worker from a live store', () => {
  const s = useSharedStack();
  let proxy: RecordingProxy;
  let badNetrc: string;

  beforeAll(async () => {
    proxy = await startRecordingProxy(s.edge.url);
    badNetrc = join(s.dir, 'bad-netrc');
    writeFileSync(badNetrc, `machine 127.0.0.1 login alice password eris_not-a-real-token\n`);
  });
  afterAll(() => proxy?.close());

  it('copies a closure with references, verified against the key Nix generated', async () => {
    const to = join(s.dir, 'client-ok');
    const r = await nixCopyFrom(s, { from: proxy.url, to, paths: [fixture!.top] });
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
    const other = generateKeyPair(s.publicKey.split(':')[0]!).public; // same name, other key
    const r = await nixCopyFrom(s, { from: proxy.url, to: join(s.dir, 'client-wrong-key'), paths: [fixture!.top], trustedKeys: other });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/signature/i);
  });

  it('fails without credentials and with a wrong token', async () => {
    const before = proxy.seen.length;
    const none = await nixCopyFrom(s, { from: proxy.url, to: join(s.dir, 'client-anon'), paths: [fixture!.top], netrc: null });
    expect(none.code).not.toBe(0);
    const wrong = await nixCopyFrom(s, { from: proxy.url, to: join(s.dir, 'client-bad'), paths: [fixture!.top], netrc: badNetrc });
    expect(wrong.code).not.toBe(0);
    const answers = proxy.seen.slice(before);
    expect(answers.length).toBeGreaterThan(0);
    for (const s of answers) {
      expect(s.status).toBe(401);
      expect(s.headers['cache-control']).toBe('private, no-store');
    }
    expect(existsSync(join(s.dir, 'client-anon', fixture!.top))).toBe(false);
  });

  it('the origin port refuses a request without the edge secret', async () => {
    for (const path of ['/nix-cache-info', '/v1/public-key', `/${hashOf(fixture!.top)}.narinfo`]) {
      const res = await fetch(s.origin.url + path, { signal: AbortSignal.timeout(5000) });
      expect(res.status).toBe(403);
    }
  });
});
