/**
 * Realisations (ca-derivations, experimental in Nix): the origin serves the
 * `.doi` files Nix itself writes for a content-addressed output, signed, and
 * a Nix client substitutes a CA derivation through the Worker without building.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createVerifier } from '../../shared/signing.ts';
import { realisationFingerprint, type Realisation } from '../../shared/realisation.ts';
import { nixEnv, nixMissing, runNix } from '../helpers/nix.ts';
import { useStack } from '../helpers/stack.ts';

const CA = ['--extra-experimental-features', 'nix-command ca-derivations'];
const caNix = new URL('../fixtures/ca.nix', import.meta.url).pathname;

describe.skipIf(nixMissing)('realisations of content-addressed derivations', () => {
  let nixDoi: Realisation[];
  let out: string;
  const s = useStack(() => ({
    keyName: 'ca-test-1',
    root(dir) {
      const root = join(dir, 'root');
      const env = nixEnv();
      out = execFileSync('nix-build', [caNix, '--no-out-link', ...CA, '--option', 'sandbox', 'false', '--option', 'substituters', ''], { env, encoding: 'utf8' }).trim();
      // Nix copies the realisations along with the outputs; the file:// cache shows what Nix itself writes.
      execFileSync('nix', ['copy', ...CA, '--no-check-sigs', '--to', root, '-f', caNix], { env, stdio: 'pipe' });
      execFileSync('nix', ['copy', ...CA, '--to', `file://${dir}/cache?compression=none`, '-f', caNix], { env, stdio: 'pipe' });
      nixDoi = readdirSync(join(dir, 'cache/realisations')).map((f) => JSON.parse(readFileSync(join(dir, 'cache/realisations', f), 'utf8')));
      return root;
    },
  }));

  const get = (path: string) => s.direct(path, { signal: AbortSignal.timeout(10_000) });

  it('serves the realisations Nix wrote, with a signature over Nix\'s fingerprint', async () => {
    expect(nixDoi.length).toBeGreaterThanOrEqual(2);
    const verifier = createVerifier([s.publicKey]);
    for (const expected of nixDoi) {
      const res = await get(`/realisations/${expected.id}.doi`);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      const ours = (await res.json()) as Realisation;
      expect({ ...ours, signatures: [] }).toEqual({ ...expected, signatures: [] });
      expect(verifier.verify(realisationFingerprint(ours), ours.signatures)).toBe(true);
    }
  });

  it('says 404 for an unknown realisation and 400 for a malformed one', async () => {
    expect((await get(`/realisations/sha256:${'0'.repeat(64)}!out.doi`)).status).toBe(404);
    for (const bad of ['/realisations/sha256:abc!out.doi', '/realisations/x.doi', `/realisations/sha256:${'0'.repeat(64)}!out`, '/realisations/..%2F..%2Fetc%2Fpasswd']) {
      expect((await get(bad)).status).toBe(400);
    }
  });

  it('lets nix build substitute a CA derivation through the Worker instead of building it', async () => {
    const client = join(s.dir, 'client');
    const r = await runNix(['build', '--extra-experimental-features', 'ca-derivations', '--store', client, '-f', caNix, '--no-link', '--max-jobs', '0',
      '--option', 'substituters', s.edge.url, '--option', 'trusted-public-keys', s.publicKey, '--option', 'netrc-file', s.netrc,
      '--option', 'sandbox', 'false'], { timeoutMs: 90_000 });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(existsSync(join(client, out))).toBe(true);
  });
});
