/**
 * The caches one origin serves, each a view of the same store: its own
 * published set, signing keys, signature cache and Priority. The routes stay
 * unaware of caches — a request is handed the deps and settings of its cache,
 * whose store answers exactly as a store without the unpublished paths would
 * (no narinfo, NAR, listing, log or realisation), so nothing outside the set
 * is ever signed with the cache's keys. Signatures the DB holds from any
 * eris cache's key are dropped before the cache adds its own, so one cache's
 * key never shows up in another's answers.
 */
import type { Signer } from '../../shared/signing.ts';
import type { CacheConfig, OriginConfig } from '../config/index.ts';
import type { Store } from '../store/store.ts';
import type { AppSettings, OriginDeps } from '../server/types.ts';
import { createSignatureCache, type SignatureCache } from '../server/signature-cache.ts';
import type { Publisher } from './publisher.ts';
import type { PublishedSet } from './published.ts';
import { HASH_PART_LENGTH } from '../../shared/store-path.ts';

export interface CacheContext {
  name: string;
  priority: number;
  isDefault: boolean;
  signers: Signer[];
  /** What the routes get for a request to this cache. */
  deps: OriginDeps;
  settings: AppSettings;
}

export interface CacheRegistry {
  /** The cache by name; undefined for unknown names. */
  get(name: string): CacheContext | undefined;
  /** The bare root's cache, if there is one. */
  readonly default: CacheContext | undefined;
  readonly all: readonly CacheContext[];
  /** Resolves once every cache's first published set is computed; rejects if one could not be. */
  readonly ready: Promise<void>;
  /** A cache's current published set (undefined before the first is computed, or for unknown names). */
  published(name: string): PublishedSet | undefined;
  close(): void;
}

/** Does the set allow the build log of this derivation (`<hash>-<name>.drv`)? */
function logPublished(set: PublishedSet, drvBaseName: string): boolean {
  const hash = drvBaseName.slice(0, HASH_PART_LENGTH);
  // Everything but the logs of excluded derivations and of derivations whose outputs are excluded.
  if (set.kind === 'all') return !set.excludedHashes.has(hash) && !set.excludedDerivers.has(drvBaseName);
  return set.members.has(hash) || set.derivers.has(drvBaseName);
}

/** The store as one cache sees it: paths outside its published set do not exist. */
export function scopedStore(store: Store, has: (hashPart: string) => boolean, set: () => PublishedSet): Store {
  return {
    storeDir: store.storeDir,
    // An unpublished path is still asked of the store, so a busy DB or a bad name answers as for any other path.
    lookup: (hashPart) => store.lookup(hashPart).then((info) => (info && has(hashPart) ? info : undefined)),
    lookupNow: (hashPart) => {
      const info = store.lookupNow(hashPart);
      return info && has(hashPart) ? info : undefined;
    },
    narState: (info) => store.narState(info),
    nar: (info) => store.nar(info),
    narChunks: (info, range) => store.narChunks(info, range),
    narBuffer: (info) => store.narBuffer(info),
    narBufferNow: (info) => store.narBufferNow(info),
    listing: (info) => store.listing(info),
    buildLog: (drv) => {
      const log = store.buildLog(drv); // throws on a malformed name, as the store does
      return log && logPublished(set(), log.drv) ? log : undefined;
    },
    isValid: (p) => store.isValid(p),
    realisation: async (id) => {
      const r = await store.realisation(id);
      return r && has(r.outPath.slice(0, HASH_PART_LENGTH)) ? r : undefined;
    },
    close: () => {},
  };
}

/** A signature cache that first drops signatures by any eris cache's key names. */
function withoutOtherCaches(inner: SignatureCache, erisKeyNames: ReadonlySet<string>): SignatureCache {
  const strip = (sigs: readonly string[]) => sigs.filter((s) => !erisKeyNames.has(s.slice(0, s.indexOf(':'))));
  return {
    sign: (fp) => inner.sign(fp),
    withOurs: (existing, fp) => inner.withOurs(strip(existing), fp),
  };
}

export interface RegistryOptions {
  config: OriginConfig;
  /** The deps shared by every cache (store, log, metrics, NAR cache). */
  base: OriginDeps;
  settings: AppSettings;
  signersFor: (cache: CacheConfig) => Signer[];
  publisher: Promise<Publisher>;
}

export function createCacheRegistry(o: RegistryOptions): CacheRegistry {
  let publisher: Publisher | undefined;
  const ready = o.publisher.then((p) => {
    publisher = p;
  });
  ready.catch(() => {}); // observed by whoever awaits ready
  const current = () => {
    if (!publisher) throw new Error('published sets are not computed yet');
    return publisher;
  };
  const signers = new Map(o.config.caches.map((c) => [c.name, o.signersFor(c)]));
  const erisKeyNames = new Set([...signers.values()].flat().map((s) => s.name));
  const contexts = o.config.caches.map((c): CacheContext => {
    const own = signers.get(c.name)!;
    const set = () => current().get(c.name);
    const has = (h: string) => current().has(c.name, h);
    // A cache publishing the whole store without exclusions sees the store as it is.
    const store = c.publish === 'all' && !c.exclude.length ? o.base.store : scopedStore(o.base.store, has, set);
    return {
      name: c.name,
      priority: c.priority,
      isDefault: c.name === o.config.defaultCache,
      signers: own,
      deps: { ...o.base, store, signers: own, signatures: withoutOtherCaches(createSignatureCache(own, 50_000, o.base.metrics), erisKeyNames) },
      settings: { ...o.settings, priority: c.priority },
    };
  });
  const byName = new Map(contexts.map((c) => [c.name, c]));
  return {
    get: (name) => byName.get(name),
    default: contexts.find((c) => c.isDefault),
    all: contexts,
    ready,
    published: (name) => (publisher && byName.has(name) ? publisher.get(name) : undefined),
    close() {
      void o.publisher.then((p) => p.close(), () => {});
    },
  };
}
