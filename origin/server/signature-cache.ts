/**
 * Signatures (narinfo, realisations) keyed by fingerprint (which holds the
 * path, NAR hash, size and references, so a changed path gets a new key).
 * Bounded LRU.
 */
import type { Signer } from '../../shared/signing.ts';
import type { Metrics } from './metrics.ts';

export interface SignatureCache {
  sign(fingerprint: string): string[];
  /**
   * `existing` signatures (from the DB, e.g. another cache's) followed by ours, dropping existing ones
   * made by a key name we sign with.
   */
  withOurs(existing: readonly string[], fingerprint: string): string[];
}

export function createSignatureCache(signers: readonly Signer[], maxEntries: number, metrics?: Metrics): SignatureCache {
  const cache = new Map<string, string[]>();
  const names = new Set(signers.map((s) => s.name));
  return {
    withOurs(existing, fp) {
      return [...existing.filter((s) => !names.has(s.slice(0, s.indexOf(':')))), ...this.sign(fp)];
    },
    sign(fp) {
      const hit = cache.get(fp);
      if (hit) {
        cache.delete(fp);
        cache.set(fp, hit);
        if (metrics) metrics.sigCacheHits++;
        return hit;
      }
      if (metrics) metrics.sigCacheMisses++;
      const sigs = signers.map((s) => s.sign(fp));
      cache.set(fp, sigs);
      if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
      return sigs;
    },
  };
}
