/**
 * Ed25519 signing and verification of narinfo fingerprints with Nix keys,
 * through node:crypto (much faster than a JS implementation). Pure computation.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { parsePublicKey, parseSecretKey, parseSignature, renderPublicKey, renderSecretKey, renderSignature, type PublicKey, type SecretKey } from './keys.ts';

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

export interface Signer {
  readonly name: string;
  /** `name:base64` of the public half. */
  readonly publicKey: string;
  /** Returns a narinfo `Sig:` value for the fingerprint. */
  sign(fingerprint: string): string;
}

export function createSigner(secret: SecretKey | string): Signer {
  const key = typeof secret === 'string' ? parseSecretKey(secret) : secret;
  const privateKey: KeyObject = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: b64url(key.seed), x: b64url(key.publicKey) },
    format: 'jwk',
  });
  // The public half stored in the file must belong to the seed, or Nix will reject every signature.
  const derived = createPublicKey(privateKey).export({ format: 'jwk' }).x;
  if (derived !== b64url(key.publicKey)) {
    throw new Error(`secret key "${key.name}" is corrupt: its public half does not match its seed`);
  }
  const name = key.name;
  return {
    name,
    publicKey: renderPublicKey({ name, key: key.publicKey }),
    sign: (fp: string) => renderSignature(name, sign(null, Buffer.from(fp), privateKey)),
  };
}

export interface Verifier {
  /** True when one of `sigs` is a valid signature of `fp` by one of the trusted keys. */
  verify(fp: string, sigs: readonly string[]): boolean;
}

export function createVerifier(trusted: readonly (PublicKey | string)[]): Verifier {
  const keys = new Map<string, KeyObject>();
  for (const t of trusted) {
    const k = typeof t === 'string' ? parsePublicKey(t) : t;
    keys.set(k.name, createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(k.key) }, format: 'jwk' }));
  }
  return {
    verify(fp, sigs) {
      for (const s of sigs) {
        let parsed;
        try {
          parsed = parseSignature(s);
        } catch {
          continue;
        }
        const key = keys.get(parsed.name);
        if (key && verify(null, Buffer.from(fp), key, parsed.signature)) return true;
      }
      return false;
    },
  };
}

/** Generate a fresh key pair in Nix's format (what `nix-store --generate-binary-cache-key` writes). */
export function generateKeyPair(name: string): { secret: string; public: string } {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
  const privateKey = createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = new Uint8Array(Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url'));
  const secret = renderSecretKey({ name, seed, publicKey });
  parseSecretKey(secret); // rejects a name Nix would not accept
  return { secret, public: renderPublicKey({ name, key: publicKey }) };
}
