/**
 * Nix binary-cache key files (`nix-store --generate-binary-cache-key NAME sec pub`):
 * secret `name:base64(64-byte ed25519 secret = seed ‖ public)`, public `name:base64(32 bytes)`.
 * Parsing only; signing lives in signing.ts.
 */
export interface SecretKey {
  name: string;
  /** The 32-byte Ed25519 seed. */
  seed: Uint8Array;
  /** The 32-byte public key stored in the second half of the secret. */
  publicKey: Uint8Array;
}

export interface PublicKey {
  name: string;
  key: Uint8Array;
}

const NAME_RE = /^[A-Za-z0-9.\-_+]+$/;

export function decodeBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error('not base64');
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function encodeBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function splitKey(text: string, what: string): [string, Uint8Array] {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  if (colon <= 0) throw new Error(`${what} must look like NAME:BASE64`);
  const name = trimmed.slice(0, colon);
  if (!NAME_RE.test(name)) throw new Error(`${what} has an invalid name ${JSON.stringify(name)}`);
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(trimmed.slice(colon + 1));
  } catch {
    throw new Error(`${what} "${name}" is not valid base64`);
  }
  return [name, bytes];
}

export function parseSecretKey(text: string): SecretKey {
  const [name, bytes] = splitKey(text, 'secret key');
  if (bytes.length !== 64) throw new Error(`secret key "${name}" must hold 64 bytes, has ${bytes.length}`);
  return { name, seed: bytes.slice(0, 32), publicKey: bytes.slice(32) };
}

export function parsePublicKey(text: string): PublicKey {
  const [name, key] = splitKey(text, 'public key');
  if (key.length !== 32) throw new Error(`public key "${name}" must hold 32 bytes, has ${key.length}`);
  return { name, key };
}

export function renderSecretKey(key: SecretKey): string {
  const all = new Uint8Array(64);
  all.set(key.seed, 0);
  all.set(key.publicKey, 32);
  return `${key.name}:${encodeBase64(all)}`;
}

export function renderPublicKey(key: PublicKey): string {
  return `${key.name}:${encodeBase64(key.key)}`;
}

/** A narinfo `Sig:` value: `name:base64(signature)`. */
export function renderSignature(keyName: string, signature: Uint8Array): string {
  return `${keyName}:${encodeBase64(signature)}`;
}

export function parseSignature(text: string): { name: string; signature: Uint8Array } {
  const [name, signature] = splitKey(text, 'signature');
  if (signature.length !== 64) throw new Error(`signature by "${name}" must hold 64 bytes`);
  return { name, signature };
}
