/**
 * Nix's base-32 ("nix32"): alphabet without e, o, u, t; the byte string is read
 * as one little-endian number and printed most-significant digit first.
 */
export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT[NIX32_ALPHABET.charCodeAt(i)] = i;

/** Length of the nix32 text for `byteLength` bytes (32 bytes -> 52 chars, 20 -> 32). */
export function nix32Length(byteLength: number): number {
  return Math.floor((byteLength * 8 - 1) / 5) + 1;
}

export function encodeNix32(bytes: Uint8Array): string {
  const len = nix32Length(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const lo = bytes[i]! >> j;
    const hi = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    out += NIX32_ALPHABET[(lo | hi) & 0x1f];
  }
  return out;
}

/** True when every character is in the nix32 alphabet. */
export function isNix32(text: string): boolean {
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c >= 128 || DIGIT[c] === -1) return false;
  }
  return true;
}

export function decodeNix32(text: string): Uint8Array {
  const size = Math.floor((text.length * 5) / 8);
  if (nix32Length(size) !== text.length) throw new Error(`invalid nix32 length ${text.length}`);
  const out = new Uint8Array(size);
  for (let n = 0; n < text.length; n++) {
    const c = text.charCodeAt(text.length - n - 1);
    const digit = c < 128 ? DIGIT[c]! : -1;
    if (digit < 0) throw new Error(`invalid nix32 character ${JSON.stringify(text[text.length - n - 1])}`);
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1]! |= carry;
    else if (carry) throw new Error('invalid nix32: value too large');
  }
  return out;
}
