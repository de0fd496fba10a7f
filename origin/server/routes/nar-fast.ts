/**
 * Small NARs below Hono: a plain GET of `/nar/<hash>-<narhash>.nar` (or under a cache name) whose path
 * the store has, with a NarSize up to SMALL_NAR_BYTES, answered straight on Node's request and response
 * like routes/narinfo-fast.ts answers narinfos. A closure is mostly such paths and Nix asks for them one
 * after another on one connection, so every request's own time counts once per path: through the app
 * each one paid a fetch Request and Context, the middleware chain and the Response round trip.
 *
 * A NAR the store keeps in memory (store.ts's narBufferNow: read once, kept by store path and NAR hash, its
 * files checked with one lstat) is answered synchronously, like a narinfo; the first one waits for its read.
 *
 * What is answered here is what the app would answer (routes/nar.ts with a `whole` body): the same bytes,
 * headers and status, admission (a NAR stream counted in until the socket has the body), /metrics, usage
 * and the 'nar sent' log line (nar-transport.ts's narDone). Anything else — HEAD, a Range or If-Range,
 * another URL form, compression, a larger or unknown path, files missing, a read that fails or finds the
 * path changed, a full admission — goes to the app, which answers as always.
 */
import { HASH_PART_LENGTH, isHashPart } from '../../../shared/store-path.ts';
import { SHA256_NIX32_LENGTH, isSha256Nix32 } from '../../../shared/hash.ts';
import type { CacheRegistry } from '../../caches/registry.ts';
import type { AppSettings } from '../types.ts';
import { narDone, sendWhole } from '../nar-transport.ts';
import { NAR_ROUTE } from '../app.ts';
import { rangedNarHeaders, SMALL_NAR_BYTES } from './nar.ts';
import { fastGet, type FastPath } from './fast-path.ts';
import type { PathInfo } from '../../store/store.ts';

const SUFFIX = '.nar';
/** `nar/` + store hash + `-` + NAR hash (nix32 SHA-256) + `.nar`. */
const FILE = 'nar/'.length + HASH_PART_LENGTH + 1 + SHA256_NIX32_LENGTH + SUFFIX.length;

export function smallNarFastPath(caches: CacheRegistry, settings: Pick<AppSettings, 'edgeSecret'>): FastPath {
  return fastGet(caches, settings, SUFFIX, function fastNar(req, res, url, targetOf) {
    if (req.headers.range !== undefined || req.headers['if-range'] !== undefined) return false;
    const at = url.length - FILE;
    if (!url.startsWith('nar/', at) || url.charCodeAt(at + 4 + HASH_PART_LENGTH) !== 45 /* - */) return false;
    const hashPart = url.slice(at + 4, at + 4 + HASH_PART_LENGTH);
    const narHash = url.slice(at + 4 + 33, url.length - SUFFIX.length);
    if (!isHashPart(hashPart) || !isSha256Nix32(narHash)) return false;
    const target = targetOf(at, NAR_ROUTE);
    if (!target) return false;
    const { store, admission, metrics } = target.ctx.deps;
    const started = performance.now();
    const send = (info: PathInfo, whole: Buffer, release: () => void) => {
      metrics.request(target.route, 200);
      const done = narDone(target.ctx.deps, { route: target.route, user: target.user, cache: target.ctx.name, token: target.token }, info.storePath, 200, started, release);
      sendWhole(res, 200, rangedNarHeaders(`"${narHash}"`, whole.length), whole, done);
      return true;
    };
    // A busy store, a full admission, files gone, a path that changed: the app answers (503, 404, 500, …).
    let info;
    let kept;
    try {
      info = store.lookupNow(hashPart);
      if (!info || info.narHash !== `sha256:${narHash}` || info.narSize > SMALL_NAR_BYTES) return false;
      kept = store.narBufferNow(info); // in memory and the files still there: answered without waiting
      if (kept) return send(info, kept, admission?.enterNar() ?? (() => {}));
    } catch {
      return false;
    }
    return (async () => {
      try {
        if ((await store.narState(info)) !== 'present') return false;
        const release = admission?.enterNar() ?? (() => {});
        let whole;
        try {
          whole = await store.narBuffer(info);
        } catch (e) {
          release();
          throw e;
        }
        return send(info, whole, release);
      } catch {
        return false;
      }
    })();
  });
}
