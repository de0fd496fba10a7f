/**
 * Modern Nix (2.26, in a Debian 13 chroot: test/helpers/modern-nix.ts) pulls through the Worker from a
 * live store, as Nix 2.8 does in e2e.test.ts.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/signing.ts';
import { ensureModernNix, modernNixCopy, modernNixMissing, MODERN_NIX_VERSION } from '../helpers/modern-nix.ts';
import { useSharedStack } from '../helpers/shared-stack.ts';

const fixture = inject('fixture');

describe.skipIf(!fixture || modernNixMissing)(`Nix ${MODERN_NIX_VERSION} as a client`, () => {
  const s = useSharedStack();
  let version = '';
  beforeAll(async () => {
    version = await ensureModernNix();
  }, 900_000);

  it('is the Nix it claims to be', () => {
    expect(version).toContain(`(Nix) ${MODERN_NIX_VERSION}.`);
  });

  it('copies the fixture closure through the Worker, signatures checked', async () => {
    const to = join(s.dir, 'modern-client');
    const r = await modernNixCopy({ from: s.edge.url, to, paths: [fixture!.top], trustedKeys: s.publicKey, netrc: s.netrc });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    for (const p of fixture!.closure) expect(existsSync(join(to, p))).toBe(true);
  });

  it('refuses the closure when it trusts another key of the same name', async () => {
    const r = await modernNixCopy({ from: s.edge.url, to: join(s.dir, 'modern-untrusted'), paths: [fixture!.top], trustedKeys: generateKeyPair(s.publicKey.split(':')[0]!).public, netrc: s.netrc });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/signature/i);
  });
});
