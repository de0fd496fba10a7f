import { isNix32 } from './nix32.ts';

export const DEFAULT_STORE_DIR = '/nix/store';
/** A store path's hash part: 20 bytes in nix32. */
export const HASH_PART_LENGTH = 32;
/** Nix limits the name part of a store path to 211 characters. */
export const MAX_NAME_LENGTH = 211;

const NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;

export function isHashPart(text: string): boolean {
  return text.length === HASH_PART_LENGTH && isNix32(text);
}

export function isStorePathName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && !name.startsWith('.') && NAME_RE.test(name);
}

/** `<hash>-<name>`, the last component of a store path. */
export function isStorePathBaseName(base: string): boolean {
  return base.length > HASH_PART_LENGTH + 1 && base[HASH_PART_LENGTH] === '-' &&
    isHashPart(base.slice(0, HASH_PART_LENGTH)) && isStorePathName(base.slice(HASH_PART_LENGTH + 1));
}

export interface StorePath {
  hashPart: string;
  name: string;
}

/** Split a full store path (`/nix/store/<hash>-<name>`) in a given store dir. */
export function parseStorePath(path: string, storeDir = DEFAULT_STORE_DIR): StorePath {
  const prefix = storeDir + '/';
  if (!path.startsWith(prefix)) throw new Error(`not in ${storeDir}: ${path}`);
  const base = path.slice(prefix.length);
  if (!isStorePathBaseName(base)) throw new Error(`invalid store path: ${path}`);
  return { hashPart: base.slice(0, HASH_PART_LENGTH), name: base.slice(HASH_PART_LENGTH + 1) };
}

/** The last component of a store path, e.g. `abc…-hello` for `/nix/store/abc…-hello`. */
export function storePathBaseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}
