/**
 * Fuzzing with generated inputs from a seeded PRNG (FUZZ_SEED, printed, so a
 * failure reproduces): the NAR request parser alone; the origin's router and
 * request parsing over real HTTP (raw sockets, so nothing normalises the
 * target); the Worker's router, path checks and credential parsing under
 * wrangler dev. Every answer must be 200/400/404/405 — never a 5xx — and say
 * `Cache-Control: private, no-store`; only well-formed names of valid paths
 * may be a 200. Counts are bounded (FUZZ_COUNT scales them).
 */
import { cacheOfPath } from '../../shared/caches.ts';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { unauthorizedBody } from '../../shared/client-config.ts';
import { parseNarRequest } from '../../origin/server/routes/nar.ts';
import { addToken } from '../../origin/tokens/cli.ts';
import { narInfoOf } from '../helpers/stack.ts';
import { useSharedStack } from '../helpers/shared-stack.ts';
import { hashOf } from '../helpers/nix.ts';
import { prng, rawRequest } from '../helpers/hostile.ts';

const fixture = inject('fixture');
const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const SCALE = Number(process.env.FUZZ_COUNT ?? 1);
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

type Rng = ReturnType<typeof prng>;

/**
 * The NAR file names the origin serves, written from the protocol, not from the parser:
 * `<32 nix32>-<52 nix32>.nar` (ours, nix-serve's) or harmonia's `<52 nix32>.nar` with `?hash=<32 nix32>`,
 * each plain or with the `.zstd` / `.xz` suffix.
 */
function wellFormedNar(file: string, hash: string | undefined) {
  const c = `[${NIX32}]`;
  const m = new RegExp(`^(?:(${c}{32})-)?(${c}{52})\\.nar(\\.zstd|\\.xz)?$`).exec(file);
  if (!m) return undefined;
  const hashPart = m[1] ?? (hash !== undefined && new RegExp(`^${c}{32}$`).test(hash) ? hash : undefined);
  if (!hashPart) return undefined;
  return { hashPart, narHash: m[2]!, compression: m[3] === '.zstd' ? 'zstd' : m[3] === '.xz' ? 'xz' : 'none' };
}

/** Generates request targets around the shapes the routers know. */
function generator(rng: Rng, known: { hashes: string[]; narHashes: string[] }, o: { exclude?: string } = {}) {
  const rand = (alphabet: string, n: number) => Array.from({ length: n }, () => rng.pick([...alphabet])).join('');
  // Visible ASCII the HTTP front ends let through, minus '\\' and '#' (parser-level cases are tested in
  // hostile/resources) and `exclude` (wrangler dev's own server answers "invalid URI" to < > ` " itself).
  const printable = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i))
    .filter((c) => c !== '\\' && c !== '#' && !(o.exclude ?? '').includes(c)).join('');
  const tricks = ['..', '.', '%2e', '%2E', '%2f', '%2F', '%5c', '%00', '%25', '%ff', '%c0%ae', '%e2%80%ae', '~', ';', ',', '@', ':', '!', '$', '&', "'", '(', ')', '*', '+', '=', '-', '_', '%20', '%0a', '%0d%0a'];
  const pieces = [
    () => rng.pick(known.hashes),
    () => rng.pick(known.narHashes),
    () => rand(NIX32, 32),
    () => rand(NIX32, 52),
    () => rand(NIX32 + 'eotuEOTU', rng.pick([31, 32, 33, 51, 52, 53])),
    () => rand(NIX32.toUpperCase(), 32),
    () => rand(printable, 1 + rng.int(12)),
    () => rng.pick(tricks),
    () => rng.pick(known.hashes) + '-' + rng.pick(known.narHashes),
    () => rng.pick(known.hashes) + rng.pick(['-', '_', '', '--']) + rand(NIX32, 52),
    () => 'x'.repeat(rng.pick([100, 1000, 5000])),
  ];
  const prefixes = ['/', '/', '/', '/nar/', '/nar/', '/nar/', '/log/', '/v1/', '//', '/nar//', '/nix-cache-info', '/health/', '/metrics/'];
  const suffixes = ['.narinfo', '.narinfo', '.nar', '.nar', '.nar.xz', '.nar.zstd', '.nar.zst', '.ls', '.drv', '', '/', '.narinfo/', '.NARINFO'];
  const methods = ['GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'HEAD', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE'];
  return () => {
    let path = rng.pick(prefixes);
    const n = 1 + rng.int(3);
    for (let i = 0; i < n; i++) path += (i > 0 && rng.chance(0.3) ? rng.pick(['/', '-', '']) : '') + rng.pick(pieces)();
    path += rng.pick(suffixes);
    if (rng.chance(0.3)) {
      const q = rng.pick([
        () => `hash=${rng.pick(pieces)()}`,
        () => `hash=${rng.pick(known.hashes)}&hash=${rng.pick(pieces)()}`,
        () => rand(printable.replace(/[?]/g, ''), 1 + rng.int(20)),
        () => '',
      ])();
      path += '?' + q;
    }
    return { method: rng.pick(methods), target: path };
  };
}

describe.skipIf(!fixture)('fuzzing the request parsers and routers', () => {
  let known: { hashes: string[]; narHashes: string[]; narUrls: string[] };
  const s = useSharedStack();

  beforeAll(async () => {
    const infos = await Promise.all(fixture!.closure.map((p) => narInfoOf(s, p)));
    known = {
      hashes: fixture!.closure.map(hashOf),
      narHashes: infos.map((i) => i.narHash.slice('sha256:'.length)),
      narUrls: infos.map((i) => '/' + i.url),
    };
    console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} reproduces), scale ${SCALE}`);
  });

  it('parseNarRequest: never throws; accepts exactly the well-formed names, and reads them right', () => {
    const rng = prng(SEED);
    const gen = generator(rng, known);
    const seen = { accepted: 0, rejected: 0 };
    const check = (file: string, hash: string | undefined) => {
      const r = parseNarRequest(file, hash);
      const got = typeof r === 'string' ? undefined : r;
      expect({ file, hash, got }).toEqual({ file, hash, got: wellFormedNar(file, hash) });
      seen[got ? 'accepted' : 'rejected']++;
    };
    for (let i = 0; i < 20_000 * SCALE; i++) {
      const { target } = gen();
      const q = target.indexOf('?');
      const file = (q < 0 ? target : target.slice(0, q)).split('/').pop()!;
      check(file, q < 0 ? undefined : new URLSearchParams(target.slice(q + 1)).get('hash') ?? undefined);
    }
    // Every form on purpose, with one character off in each part.
    const [h, n] = [known.hashes[0]!, known.narHashes[0]!];
    for (const suffix of ['.nar', '.nar.zstd', '.nar.xz', '.nar.zst', '.nar.bz2', '.NAR', '']) {
      for (const [file, hash] of [[`${h}-${n}${suffix}`, undefined], [`${n}${suffix}`, h], [`${n}${suffix}`, undefined], [`${n}${suffix}`, h.slice(1) + 'e'],
        [`${h.slice(1)}e-${n}${suffix}`, undefined], [`${h}-${n.slice(1)}u${suffix}`, undefined], [`${h}_${n}${suffix}`, undefined], [`${h}-${n}x${suffix}`, undefined]] as const) check(file, hash);
    }
    // Both directions were exercised, not just the rejections.
    expect(seen.accepted).toBeGreaterThan(100);
    expect(seen.rejected).toBeGreaterThan(1000);
  });

  /** Sends generated requests; returns counts by status. Fails on the first bad answer, with the input. */
  async function fuzz(port: number, count: number, seed: number, headers: () => string, allowed: number[], exclude = '', allowedFor?: (target: string) => number[] | undefined) {
    const rng = prng(seed);
    const gen = generator(rng, known, { exclude });
    const byStatus = new Map<number, number>();
    for (let i = 0; i < count; i++) {
      const { method, target } = gen();
      const r = await rawRequest(port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers()}`);
      byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
      const where = `input #${i} (seed ${seed}): ${method} ${target.slice(0, 300)} → ${r.status} ${r.body.toString('latin1').slice(0, 120)}`;
      expect(allowedFor?.(target) ?? allowed, where).toContain(r.status);
      expect(r.headers['cache-control'], where).toBe('private, no-store');
      if (r.status === 200 && method === 'GET') {
        // Only real names are served: a NAR URL we advertise, a narinfo/listing of a valid path, or a fixed endpoint.
        const path = target.split('?')[0]!;
        const ok = known.narUrls.some((u) => path === u) || known.hashes.some((h) => path === `/${h}.narinfo` || path === `/${h}.ls`) ||
          ['/nix-cache-info', '/'].includes(path) || /^\/nar\/[0-9a-z]{52}\.nar$/.test(path); // '/': the edge's landing page
        expect(ok, where).toBe(true);
      }
    }
    return byStatus;
  }

  it('the origin, straight (with the edge secret): 200/400/404 only, always no-store', async () => {
    const counts = await fuzz(s.origin.port, 2000 * SCALE, SEED + 1, () => `x-eris-edge-secret: ${s.secret}`, [200, 400, 404]);
    console.log(`origin fuzz: ${[...counts].map(([k, v]) => `${v}×${k}`).join(', ')}`);
  });

  it('the Worker under wrangler dev (with a token): 200/400/404/405 only, always no-store', async () => {
    // A token that may also write, so other methods get through authentication to the router (405).
    const writer = await addToken({ mode: 'local', persistTo: s.edge.persistTo }, 'carol', { scopes: ['read', 'write'] });
    // A first segment shaped like a cache name names a cache this token (no cache list: the default cache only)
    // was not granted: 401 before the origin is asked, exactly as for a bad token (see Caches).
    const otherCache = (target: string) => {
      let path: string;
      try {
        path = decodeURIComponent(new URL(target.split('?')[0]!, 'http://127.0.0.1').pathname);
      } catch {
        return undefined;
      }
      const c = cacheOfPath(path).cache;
      return c !== undefined && c !== 'default' ? [400, 401] : undefined;
    };
    const counts = await fuzz(s.edge.port, 300 * SCALE, SEED + 2, () => `Authorization: Bearer ${writer}`, [200, 400, 404, 405], '<>`"', otherCache);
    console.log(`edge fuzz: ${[...counts].map(([k, v]) => `${v}×${k}`).join(', ')}`);
  });

  it('the Worker\'s credential parsing: generated Authorization headers are all the same 401', async () => {
    const rng = prng(SEED + 3);
    const b64 = (x: string) => Buffer.from(x, 'latin1').toString('base64');
    const junk = () => Array.from({ length: rng.int(40) }, () => String.fromCharCode(0x20 + rng.int(0x5f))).join('');
    const forms = [
      () => `Basic ${b64(junk())}`,
      () => `Basic ${b64(`alice:${junk()}`)}`,
      () => `Basic ${b64(`${junk()}:${s.token.slice(0, rng.int(s.token.length))}`)}`,
      () => `Basic ${junk()}`,
      () => `Bearer ${junk()}`,
      () => `Bearer ${s.token.slice(0, rng.int(s.token.length))}`,
      () => `${rng.pick(['basic', 'BASIC', 'bearer', 'BEARER', 'Token', 'Negotiate', ''])} ${junk()}`,
      () => junk(),
      () => `Basic ${b64('alice:' + 'x'.repeat(rng.pick([511, 512, 513, 4000])))}`,
    ];
    const bodies = new Set<string>();
    const statuses = new Map<number, number>();
    for (let i = 0; i < 200 * SCALE; i++) {
      const auth = rng.pick(forms)();
      // A fresh address each time: the failed-auth brake would otherwise (rightly) answer 429.
      const r = await rawRequest(s.edge.port, `GET /${rng.pick(known.hashes)}.narinfo HTTP/1.1\r\nHost: 127.0.0.1\r\nCF-Connecting-IP: 10.${i >> 16 & 255}.${i >> 8 & 255}.${i & 255}\r\nAuthorization: ${auth}`);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      expect(r.status, `#${i} ${JSON.stringify(auth)} → ${r.status}`).toBe(401);
      expect(r.headers['cache-control']).toBe('private, no-store');
      bodies.add(r.body.toString());
    }
    expect([...bodies]).toEqual([unauthorizedBody('127.0.0.1')]);
    console.log(`credential fuzz: ${[...statuses].map(([k, v]) => `${v}×${k}`).join(', ')}`);
  });
});
