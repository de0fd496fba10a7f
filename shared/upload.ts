/**
 * The files a stock Nix client uploads with `nix copy --to http(s)://…`
 * (HttpBinaryCacheStore::upsertFile), by the path it PUTs them at, relative to
 * the cache root. Pure: both the edge and the origin classify uploads here.
 *
 *   nar/<filehash nix32>.nar[.xz|.zst|.bz2]   the (compressed) NAR, named by the SHA-256 of the file
 *   <hash>.ls                                 the listing (write-nar-listing = true)
 *   log/<hash>-<name>.drv                     a build log (nix store copy-log)
 *   realisations/sha256:<hex>!<out>.doi       a CA derivation output (ca-derivations)
 *   <hash>.narinfo                            last: the path's metadata, naming the NAR file
 */
import { isSha256Nix32 } from './hash.ts';
import { isHashPart, isStorePathBaseName } from './store-path.ts';
import { parseRealisationId } from './realisation.ts';

/** Compression of an uploaded NAR, as narinfo `Compression:` names it. */
export type UploadCompression = 'none' | 'xz' | 'zstd' | 'bzip2';

export type Upload =
  | { kind: 'nar'; file: string; fileHash: string; compression: UploadCompression }
  | { kind: 'narinfo'; hashPart: string }
  | { kind: 'listing'; hashPart: string }
  | { kind: 'log'; drv: string }
  | { kind: 'realisation'; id: string };

/**
 * The file-name suffix Nix uses for each compression (BinaryCacheStore::addToStoreCommon). Longest suffix
 * first: `.nar` is a suffix of none of the others, but keep the order explicit.
 */
const BY_SUFFIX: [string, UploadCompression][] = [['.nar.xz', 'xz'], ['.nar.zst', 'zstd'], ['.nar.bz2', 'bzip2'], ['.nar', 'none']];

/** Classify an upload path (`nar/…`, `<hash>.narinfo`, …, without the cache prefix), or say why it is not one. */
export function parseUploadPath(path: string): Upload | string {
  if (path.startsWith('nar/')) {
    const file = path.slice(4);
    const match = BY_SUFFIX.find(([s]) => file.endsWith(s));
    if (!match) return 'unsupported NAR upload: expected nar/<file hash>.nar, .nar.xz, .nar.zst or .nar.bz2';
    const stem = file.slice(0, -match[0].length);
    if (!isSha256Nix32(stem)) return 'malformed NAR upload name: expected nar/<52-character nix32 SHA-256 of the file>.nar…';
    return { kind: 'nar', file, fileHash: `sha256:${stem}`, compression: match[1] };
  }
  if (path.startsWith('log/')) {
    const drv = path.slice(4);
    if (!drv.endsWith('.drv') || !isStorePathBaseName(drv)) return 'malformed log upload name: expected log/<hash>-<name>.drv';
    return { kind: 'log', drv };
  }
  if (path.startsWith('realisations/')) {
    const name = path.slice('realisations/'.length);
    if (!name.endsWith('.doi') || !parseRealisationId(name.slice(0, -4))) return 'malformed realisation upload name: expected realisations/sha256:<hex>!<output>.doi';
    return { kind: 'realisation', id: name.slice(0, -4) };
  }
  for (const [ext, kind] of [['.narinfo', 'narinfo'], ['.ls', 'listing']] as const) {
    if (path.endsWith(ext) && !path.includes('/')) {
      const hashPart = path.slice(0, -ext.length);
      if (!isHashPart(hashPart)) return `malformed name: expected <32-character nix32 hash>${ext}`;
      return { kind, hashPart };
    }
  }
  return 'not an upload path Nix uses (nar/…, <hash>.narinfo, <hash>.ls, log/…, realisations/…)';
}

/** The compression a narinfo's `URL: nar/<file>` implies, checked against its `Compression:` field. */
export function narFileOfUrl(url: string, compression: string): { file: string; fileHash: string; compression: UploadCompression } | string {
  const parsed = parseUploadPath(url);
  if (typeof parsed === 'string' || parsed.kind !== 'nar') return `narinfo URL ${JSON.stringify(url.slice(0, 120))} does not name an uploaded NAR file (nar/<file hash>.nar…)`;
  if (parsed.compression !== compression) return `narinfo Compression: ${compression.slice(0, 20)} does not match its URL ${url.slice(0, 120)}`;
  return parsed;
}
