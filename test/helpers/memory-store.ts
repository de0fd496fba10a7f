/**
 * An in-memory Store (origin/store/store.ts) for route tests: `composeOrigin(config, { store })`
 * then `app.request()` answers in milliseconds, without Nix, sockets or files. Each path is one
 * regular file whose NAR is built here, so NarHash, NarSize, listings and byte ranges are real.
 * `busy` makes every DB read fail as a locked Nix DB does; `gone` drops a path's files but not its row.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { encodeNix32 } from '../../shared/nix32.ts';
import { isHashPart, storePathBaseName } from '../../shared/store-path.ts';
import { parseRealisationId, type Realisation } from '../../shared/realisation.ts';
import { StoreBusyError } from '../../origin/store/db.ts';
import type { PathInfo, Store } from '../../origin/store/store.ts';
import type { ListingNode } from '../../origin/store/nar-stream.ts';
import { buildLogNameProblem } from '../../origin/store/build-log.ts';

export interface MemoryPathSpec {
  /** Name after the hash, e.g. `hello-2.12`. */
  name: string;
  /** The file's contents. */
  contents?: string | Buffer;
  executable?: boolean;
  /** Names (as given here) of other paths it references. */
  references?: string[];
  deriver?: string;
  sigs?: string[];
  ca?: string;
}

export interface MemoryPath extends PathInfo {
  nar: Buffer;
  listing: { version: 1; root: ListingNode };
}

export interface MemoryStore extends Store {
  /** Paths by the name they were given. */
  paths: Record<string, MemoryPath>;
  /** Adds a path (it is valid at once, like a path Nix just registered). */
  add(spec: MemoryPathSpec): MemoryPath;
  /** Unregisters a path (a garbage collection). */
  remove(name: string): void;
  /** Build logs by derivation base name. */
  logs: Map<string, string>;
  realisations: Map<string, Realisation>;
  /** While true, every DB read throws StoreBusyError. */
  busy: boolean;
  /** Store paths whose files are gone while their rows stay. */
  gone: Set<string>;
  /** While set, every DB read throws this (an unexpected failure). */
  failure?: Error;
}

const narString = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
};

/** The NAR of a single regular file, and the offset of its contents in it. */
export function regularFileNar(contents: Buffer, executable = false): { nar: Buffer; contentsOffset: number } {
  const head = Buffer.concat(['nix-archive-1', '(', 'type', 'regular', ...(executable ? ['executable', ''] : []), 'contents'].map(narString));
  return { nar: Buffer.concat([head, narString(contents), narString(')')]), contentsOffset: head.length + 8 };
}

/** A made-up but well-formed hash part, the same for the same name. */
export const fakeHashPart = (name: string) => encodeNix32(createHash('sha256').update(`eris-memory:${name}`).digest().subarray(0, 20));

export function createMemoryStore(specs: MemoryPathSpec[] = [], storeDir = '/nix/store'): MemoryStore {
  const byHash = new Map<string, MemoryPath>();
  const pathOf = (name: string) => `${storeDir}/${fakeHashPart(name)}-${name}`;

  const db = <T>(read: () => T): Promise<T> => {
    if (store.failure) return Promise.reject(store.failure);
    if (store.busy) return Promise.reject(new StoreBusyError('database is locked'));
    return Promise.resolve(read());
  };
  /** Paths whose NAR narBuffer made (and the real store would keep in memory). */
  const kept = new Set<string>();
  const slice = (p: PathInfo, range?: { start: number; end: number }) => {
    const nar = (p as MemoryPath).nar;
    return range ? nar.subarray(range.start, range.end) : nar;
  };

  const store: MemoryStore = {
    storeDir,
    paths: {},
    logs: new Map(),
    realisations: new Map(),
    busy: false,
    gone: new Set(),
    add(spec) {
      const contents = typeof spec.contents === 'string' ? Buffer.from(spec.contents) : spec.contents ?? Buffer.from(`contents of ${spec.name}\n`);
      const { nar, contentsOffset } = regularFileNar(contents, spec.executable);
      const storePath = pathOf(spec.name);
      const info: MemoryPath = {
        storePath,
        hashPart: fakeHashPart(spec.name),
        narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
        narSize: nar.length,
        references: (spec.references ?? []).map(pathOf).sort(),
        sigs: spec.sigs ?? [],
        nar,
        listing: { version: 1, root: { type: 'regular', size: contents.length, ...(spec.executable ? { executable: true as const } : {}), narOffset: contentsOffset } },
      };
      if (spec.deriver) info.deriver = `${storeDir}/${spec.deriver}`;
      if (spec.ca) info.ca = spec.ca;
      byHash.set(info.hashPart, info);
      store.paths[spec.name] = info;
      return info;
    },
    remove(name) {
      const p = store.paths[name];
      if (p) byHash.delete(p.hashPart);
      delete store.paths[name];
    },
    lookup(hashPart) {
      if (!isHashPart(hashPart)) return Promise.reject(new Error(`invalid store path hash ${JSON.stringify(hashPart)}`));
      return db(() => byHash.get(hashPart));
    },
    lookupNow(hashPart) {
      if (!isHashPart(hashPart)) throw new Error(`invalid store path hash ${JSON.stringify(hashPart)}`);
      if (store.failure) throw store.failure;
      if (store.busy) throw new StoreBusyError('database is locked');
      return byHash.get(hashPart);
    },
    async narState(info) {
      if (!store.gone.has(info.storePath)) return 'present';
      return (await store.isValid(info.storePath)) ? 'broken' : 'gone';
    },
    nar(info) {
      return Readable.from([slice(info)]);
    },
    async *narChunks(info, range) {
      yield slice(info, range);
    },
    async narBuffer(info) {
      kept.add(info.storePath);
      return slice(info);
    },
    narBufferNow(info) {
      if (!kept.has(info.storePath)) return undefined;
      if (store.gone.has(info.storePath)) throw new Error(`${info.storePath}: no such file`);
      return slice(info);
    },
    async listing(info) {
      return (info as MemoryPath).listing;
    },
    buildLog(drvOrHash) {
      if (buildLogNameProblem(drvOrHash)) throw new Error('invalid derivation name');
      const drv = [...store.logs.keys()].find((d) => d === drvOrHash || d.slice(0, 32) === drvOrHash);
      const text = drv === undefined ? undefined : store.logs.get(drv);
      return text === undefined ? undefined : { drv: drv!, open: () => Readable.from([Buffer.from(text)]) };
    },
    isValid(storePath) {
      return db(() => [...byHash.values()].some((p) => p.storePath === storePath));
    },
    realisation(id) {
      if (!parseRealisationId(id)) return Promise.reject(new Error('invalid realisation id'));
      return db(() => store.realisations.get(id));
    },
    close() {},
  };
  for (const s of specs) store.add(s);
  return store;
}

/** The base name a memory store gives the path called `name`. */
export const memoryBaseName = (name: string) => storePathBaseName(`/nix/store/${fakeHashPart(name)}-${name}`);
