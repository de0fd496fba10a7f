/**
 * The live Nix store as eris sees it: path metadata from db.sqlite, NAR bytes
 * from the files under `<root><storeDir>`. Only paths valid in the DB are served.
 */
import { join } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { formatSha256Nix32, parseSha256 } from '../../shared/hash.ts';
import { isHashPart } from '../../shared/store-path.ts';
import { openStoreDb, type StoreDb } from './db.ts';
import { narStream } from './nar-stream.ts';

export interface PathInfo {
  /** Full store path, e.g. `/nix/store/<hash>-<name>`. */
  storePath: string;
  hashPart: string;
  /** `sha256:<nix32>`. */
  narHash: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
  /** Full store path of the deriver, if known. */
  deriver?: string;
  /** Signatures already stored in the DB. */
  sigs: string[];
  ca?: string;
}

export interface Store {
  readonly storeDir: string;
  /** Path info by hash part; undefined when no valid path has it. Throws on malformed input. */
  lookup(hashPart: string): PathInfo | undefined;
  /** The NAR of a path returned by lookup. The stream errors if the path changes under it. */
  nar(info: PathInfo): Readable;
  /** True while the path is still valid in the DB. */
  isValid(storePath: string): boolean;
  close(): void;
}

export interface StoreOptions {
  /** File-system root the store lives under: `/` for the machine's store, a dir for a chroot store. */
  root: string;
  /** The logical store directory (what paths say), `/nix/store`. */
  storeDir: string;
  busyTimeoutMs?: number;
}

export function storeDbPath(root: string): string {
  return join(root, 'nix/var/nix/db/db.sqlite');
}

/** Checks that `root` holds a Nix store; returns a one-line reason when it does not. */
export function checkStoreRoot(root: string, storeDir: string): string | undefined {
  const dir = join(root, storeDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return `no Nix store at ${dir}`;
  const db = storeDbPath(root);
  if (!existsSync(db)) return `no Nix store database at ${db}`;
  return undefined;
}

export function createStore(options: StoreOptions): Store {
  const { root, storeDir } = options;
  const problem = checkStoreRoot(root, storeDir);
  if (problem) throw new Error(problem);
  const db: StoreDb = openStoreDb(storeDbPath(root), storeDir, { busyTimeoutMs: options.busyTimeoutMs });

  return {
    storeDir,
    lookup(hashPart) {
      if (!isHashPart(hashPart)) throw new Error(`invalid store path hash ${JSON.stringify(hashPart)}`);
      const row = db.byHashPart(hashPart);
      if (!row) return undefined;
      const info: PathInfo = {
        storePath: row.path,
        hashPart,
        narHash: formatSha256Nix32(parseSha256(row.hash)),
        narSize: Number(row.narSize ?? 0),
        references: db.references(row.id),
        sigs: row.sigs ? row.sigs.split(' ').filter(Boolean) : [],
      };
      if (row.deriver) info.deriver = row.deriver;
      if (row.ca) info.ca = row.ca;
      return info;
    },
    nar(info) {
      // storePath came from the DB and starts with storeDir + '/<hash>-'; join keeps it under root.
      return narStream(join(root, info.storePath), info.narSize);
    },
    isValid(storePath) {
      return db.isValid(storePath);
    },
    close() {
      db.close();
    },
  };
}
