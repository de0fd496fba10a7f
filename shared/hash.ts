import { decodeNix32, encodeNix32, isNix32 } from './nix32.ts';

/** A SHA-256 digest as it appears in Nix metadata. */
export const SHA256_BYTES = 32;
export const SHA256_NIX32_LENGTH = 52;

export function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new Error('invalid hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** True for a 52-character nix32 SHA-256 digest. */
export function isSha256Nix32(text: string): boolean {
  return text.length === SHA256_NIX32_LENGTH && isNix32(text);
}

/**
 * Parse `sha256:<digest>` where digest is hex (as db.sqlite stores it), nix32
 * (as narinfo prints it) or base64 (SRI-ish, as `nix path-info --json` prints
 * it after `sha256-`). Returns the raw 32 bytes.
 */
export function parseSha256(text: string): Uint8Array {
  let digest: string;
  if (text.startsWith('sha256:')) digest = text.slice(7);
  else if (text.startsWith('sha256-')) digest = text.slice(7);
  else throw new Error(`unsupported hash ${JSON.stringify(text.slice(0, 16))}`);
  if (digest.length === 64 && /^[0-9a-f]+$/i.test(digest)) return hexToBytes(digest);
  if (digest.length === SHA256_NIX32_LENGTH) return decodeNix32(digest);
  if (digest.length === 44) {
    const bin = atob(digest);
    if (bin.length === SHA256_BYTES) return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  throw new Error('invalid sha256 digest');
}

/** `sha256:<nix32>`, the form narinfo and fingerprints use. */
export function formatSha256Nix32(bytes: Uint8Array): string {
  return `sha256:${encodeNix32(bytes)}`;
}
