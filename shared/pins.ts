/**
 * Pins (docs/retention.md): named roots that retention keeps, with revisions. What the client
 * (`eris push --pin`), the edge and the origin share:
 *
 *   POST /<cache>/v1/push/pins        write grant (the edge treats it as any push request)
 *        {"name": "main", "storePath": "/nix/store/…", "keepRevisions"?: N}  →  PinResponse
 *        The path must be published in the cache already (pushed first). It becomes pin NAME's newest
 *        revision; with keepRevisions only the newest N revisions stay.
 */
import { PUSH_PREFIX } from './push-protocol.ts';

export const PINS_PATH = `${PUSH_PREFIX}/pins`;
export const pinUrl = (cache: string) => `/${cache}${PINS_PATH}`;

/** Most revisions `keepRevisions` may name. */
export const MAX_KEEP_REVISIONS = 10_000;

/** Branch-like names: letters, digits, `.`, `_`, `-` (no `/`: it is one directory). */
export function pinNameProblem(name: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) return `"${name}" is not a pin name (letters, digits, ".", "_", "-"; up to 100; no "/")`;
  return undefined;
}

/** A keep-revisions value, or what is wrong with it. */
export function keepRevisionsProblem(n: unknown): string | undefined {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_KEEP_REVISIONS) return `keep-revisions: expected a whole number from 1 to ${MAX_KEEP_REVISIONS}`;
  return undefined;
}

export interface PinRequest {
  name: string;
  storePath: string;
  keepRevisions?: number;
}

export interface PinResponse {
  name: string;
  storePath: string;
  /** The revision number now newest. */
  revision: number;
  /** False when the path was the newest revision already. */
  added: boolean;
  /** Store paths of the revisions let go by keepRevisions, oldest first. */
  removed: string[];
}

/** Parses a pin request body; a string says what is wrong. */
export function parsePinRequest(value: unknown): PinRequest | string {
  if (typeof value !== 'object' || value === null) return 'expected {"name", "storePath", "keepRevisions"?}';
  const v = value as Record<string, unknown>;
  if (typeof v.name !== 'string') return 'name: expected a pin name';
  const problem = pinNameProblem(v.name);
  if (problem) return problem;
  if (typeof v.storePath !== 'string') return 'storePath: expected a store path';
  if (v.keepRevisions !== undefined) {
    const p = keepRevisionsProblem(v.keepRevisions);
    if (p) return p;
  }
  return { name: v.name, storePath: v.storePath, ...(v.keepRevisions === undefined ? {} : { keepRevisions: v.keepRevisions as number }) };
}
