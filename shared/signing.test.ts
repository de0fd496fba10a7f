import { describe, expect, it } from 'vitest';
import { createSigner, createVerifier, generateKeyPair } from './signing.ts';
import { parsePublicKey, parseSecretKey } from './keys.ts';
import { fingerprint } from './fingerprint.ts';
import { parseNarInfo } from './narinfo.ts';
import { goldenNarInfos, goldenText } from '../test/fixtures/golden.ts';

const secretText = goldenText('keys/golden-key-1.sec');
const publicText = goldenText('keys/golden-key-1.pub');

function goldenFingerprints() {
  return goldenNarInfos().map(({ text }) => {
    const n = parseNarInfo(text);
    const refs = n.references.map((r) => `/nix/store/${r}`);
    return { n, fp: fingerprint(n.storePath, n.narHash, n.narSize, refs) };
  });
}

describe('keys and signatures', () => {
  it('loads key files made by nix-store --generate-binary-cache-key', () => {
    const sk = parseSecretKey(secretText);
    const pk = parsePublicKey(publicText);
    expect(sk.name).toBe('golden-key-1');
    expect(pk.name).toBe('golden-key-1');
    expect(createSigner(sk).publicKey).toBe(publicText.trim());
  });

  it('produces exactly the Sig lines that nix store sign produced', () => {
    const signer = createSigner(secretText);
    for (const { n, fp } of goldenFingerprints()) {
      expect(n.sigs).toHaveLength(1);
      expect(signer.sign(fp)).toBe(n.sigs[0]);
    }
  });

  it('verifies Nix signatures and rejects a changed fingerprint or an unknown key', () => {
    const v = createVerifier([publicText]);
    for (const { n, fp } of goldenFingerprints()) {
      expect(v.verify(fp, n.sigs)).toBe(true);
      expect(v.verify(fp.replace(/;\d+;/, ';1;'), n.sigs)).toBe(false);
    }
    const other = generateKeyPair('other-key');
    expect(createVerifier([other.public]).verify(goldenFingerprints()[0]!.fp, goldenFingerprints()[0]!.n.sigs)).toBe(false);
  });

  it('verifies with several trusted keys (rotation)', () => {
    const oldKey = generateKeyPair('cache-1');
    const newKey = generateKeyPair('cache-2');
    const fp = goldenFingerprints()[0]!.fp;
    const sigs = [createSigner(oldKey.secret).sign(fp), createSigner(newKey.secret).sign(fp)];
    expect(createVerifier([newKey.public]).verify(fp, sigs)).toBe(true);
    expect(createVerifier([oldKey.public]).verify(fp, sigs.slice(1))).toBe(false);
  });

  it('generates key pairs in the format Nix reads', () => {
    const kp = generateKeyPair('eris-test-1');
    expect(kp.secret).toMatch(/^eris-test-1:[A-Za-z0-9+/]{86}==$/);
    expect(kp.public).toMatch(/^eris-test-1:[A-Za-z0-9+/]{43}=$/);
    expect(createSigner(kp.secret).publicKey).toBe(kp.public);
  });

  it('rejects malformed keys with a clear message', () => {
    expect(() => parseSecretKey('nocolon')).toThrow(/NAME:BASE64/);
    expect(() => parseSecretKey('k:AAAA')).toThrow(/64 bytes/);
    expect(() => parseSecretKey('k:!!!!')).toThrow(/base64/);
    expect(() => parsePublicKey(secretText)).toThrow(/32 bytes/);
    // A secret whose public half belongs to another key would make Nix reject every signature.
    const a = parseSecretKey(generateKeyPair('a').secret);
    const b = parseSecretKey(generateKeyPair('a').secret);
    expect(() => createSigner({ ...a, publicKey: b.publicKey })).toThrow(/corrupt/);
  });
});
