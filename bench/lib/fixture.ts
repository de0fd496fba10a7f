/**
 * The benchmark's store: built with real Nix in /nix/store, copied into a
 * chroot store (what the origin serves) and exported as a static
 * `file://` binary cache (what nginx serves). A second root shares the same
 * store directory but has a DB with many synthetic extra paths. Everything is
 * kept under cacheDir, keyed by the parameters, so reruns start at once.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { run } from './procs.ts';
import type { BenchConfig } from './config.ts';

const NIX_EXPR = new URL('./fixture.nix', import.meta.url).pathname;
const SALT = 'eris-bench-1';
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

export interface Fixture {
  dir: string;
  /** Chroot store root served by the origin. */
  root: string;
  /** Same store directory, DB inflated with synthetic rows. */
  bigRoot: string;
  /** `file://` binary cache served by nginx. */
  staticDir: string;
  small: string[];
  large: string;
  /** Refers to every small path: the many-reference narinfo, and the closure (it + the small paths) `nix copy` fetches. */
  wide: string;
  huge?: string;
  hugeMb?: number;
  inflateRows: number;
  /** Total ValidPaths rows in each DB. */
  dbRows: { root: number; bigRoot: number };
}

interface Manifest {
  version: 1;
  small: string[];
  large: string;
  wide?: string;
  huge?: string;
  hugeMb?: number;
  dbRows?: { root: number; bigRoot: number };
}

function nixEnv(): NodeJS.ProcessEnv {
  // As root, talk to the store directly (no daemon needed); otherwise use the daemon.
  return process.getuid?.() === 0 ? { ...process.env, NIX_REMOTE: '' } : process.env;
}

const X = ['--extra-experimental-features', 'nix-command'];
const BUILD_OPTS = ['--option', 'sandbox', 'false', '--option', 'substituters', '', '--max-jobs', '4', '--no-out-link'];

function nixBuild(attr: string, args: string[], timeoutMs: number): string[] {
  const out = run('nix-build', [NIX_EXPR, '-A', attr, '--argstr', 'salt', SALT, ...args, ...BUILD_OPTS], {
    env: nixEnv(),
    timeoutMs,
    what: `nix-build -A ${attr}`,
  });
  return out.split('\n').filter((l) => l.startsWith('/'));
}

function nixCopyTo(dest: string, paths: string[], from: string | undefined, timeoutMs: number) {
  // Batches keep the command line short whatever the number of paths.
  for (let i = 0; i < paths.length; i += 200) {
    const batch = paths.slice(i, i + 200);
    const args = ['copy', ...X, '--no-check-sigs', ...(from ? ['--from', from] : []), '--to', dest, ...batch];
    run('nix', args, { env: nixEnv(), timeoutMs, what: `nix copy --to ${dest}` });
  }
}

function storeHasPath(root: string, p: string): boolean {
  return existsSync(join(root, p));
}

function countRows(dbPath: string): number {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return Number((db.prepare('SELECT count(*) AS n FROM ValidPaths').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/** A copy of root's DB with `rows` synthetic valid paths (and two references each), in bigRoot. */
function inflateDb(root: string, bigRoot: string, rows: number) {
  rmSync(bigRoot, { recursive: true, force: true });
  mkdirSync(join(bigRoot, 'nix/var/nix/db'), { recursive: true });
  // The origin reads only files of the paths it serves: share the store directory.
  symlinkSync(join(root, 'nix/store'), join(bigRoot, 'nix/store'));
  const dst = join(bigRoot, 'nix/var/nix/db/db.sqlite');
  const src = new DatabaseSync(join(root, 'nix/var/nix/db/db.sqlite'), { readOnly: true });
  try {
    src.exec(`VACUUM INTO '${dst.replaceAll("'", "''")}'`);
  } finally {
    src.close();
  }
  const db = new DatabaseSync(dst);
  try {
    // Deterministic pseudo-random names spread over the whole index, like real hashes.
    let seed = 0x2545f491;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    const nix32 = (len: number) => {
      let s = '';
      for (let i = 0; i < len; i++) s += NIX32[Math.floor(rnd() * 32)];
      return s;
    };
    const hex = (len: number) => {
      let s = '';
      for (let i = 0; i < len; i++) s += '0123456789abcdef'[Math.floor(rnd() * 16)];
      return s;
    };
    db.exec('BEGIN');
    const ins = db.prepare('INSERT INTO ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca) VALUES (?, ?, ?, NULL, ?, 0, NULL, NULL)');
    const first = Number((db.prepare('SELECT coalesce(max(id), 0) + 1 AS n FROM ValidPaths').get() as { n: number }).n);
    for (let i = 0; i < rows; i++) ins.run(`/nix/store/${nix32(32)}-synthetic-${i}`, `sha256:${hex(64)}`, 1_700_000_000 + i, 1000 + i);
    const ref = db.prepare('INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?, ?)');
    for (let i = 0; i < rows; i++) {
      ref.run(first + i, first + Math.floor(rnd() * rows));
      ref.run(first + i, first + Math.floor(rnd() * rows));
    }
    db.exec('COMMIT');
  } finally {
    db.close();
  }
}

export function fixtureKey(c: BenchConfig): string {
  return `v1-n${c.smallPaths}-l${c.largeMb}-r${c.inflateRows}`;
}

/** Builds what is missing and returns the fixture. Logs progress on stderr. */
export function ensureFixture(c: BenchConfig, say: (s: string) => void): Fixture {
  const dir = join(c.cacheDir, fixtureKey(c));
  const root = join(dir, 'root');
  const bigRoot = join(dir, 'root-inflated');
  const staticDir = join(dir, 'static');
  const manifestPath = join(dir, 'manifest.json');
  let m: Manifest | undefined;
  try {
    m = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    const intact = m.version === 1 && m.small.length === c.smallPaths && storeHasPath(root, m.large) &&
      m.small.every((p) => storeHasPath(root, p)) && existsSync(join(staticDir, 'nix-cache-info')) &&
      existsSync(join(bigRoot, 'nix/var/nix/db/db.sqlite')) && m.dbRows !== undefined;
    if (!intact) m = undefined;
  } catch {
    m = undefined;
  }

  if (m) {
    say(`fixture: reusing ${dir}`);
  } else {
    say(`fixture: building ${c.smallPaths} small paths and a ${c.largeMb} MiB path with nix-build …`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    const small = nixBuild('small', ['--arg', 'n', String(c.smallPaths)], 600_000);
    const [large] = nixBuild('large', ['--arg', 'largeMb', String(c.largeMb)], 600_000);
    if (small.length !== c.smallPaths || !large) throw new Error(`nix-build returned ${small.length} small paths and ${large ? 1 : 0} large, expected ${c.smallPaths} and 1`);
    say(`fixture: built in ${((Date.now() - t0) / 1000).toFixed(1)} s; copying into the chroot store ${root} …`);
    nixCopyTo(root, [...small, large], undefined, 600_000);
    say(`fixture: exporting the static binary cache ${staticDir} …`);
    nixCopyTo(`file://${staticDir}?compression=none`, [...small, large], root, 600_000);
    say(`fixture: inflating a copy of the DB with ${c.inflateRows} synthetic paths …`);
    inflateDb(root, bigRoot, c.inflateRows);
    m = { version: 1, small, large };
  }
  m.dbRows = { root: countRows(join(root, 'nix/var/nix/db/db.sqlite')), bigRoot: countRows(join(bigRoot, 'nix/var/nix/db/db.sqlite')) };

  if (!(m.wide && storeHasPath(root, m.wide) && existsSync(join(staticDir, `${hashPart(m.wide)}.narinfo`)))) {
    say(`fixture: building the path that refers to all ${c.smallPaths} small ones …`);
    const [wide] = nixBuild('wide', ['--arg', 'n', String(c.smallPaths)], 600_000);
    if (!wide) throw new Error('nix-build -A wide returned no path');
    nixCopyTo(root, [wide], undefined, 600_000);
    nixCopyTo(`file://${staticDir}?compression=none`, [wide], root, 600_000);
    m.wide = wide;
  }

  if (c.huge && !(m.huge && m.hugeMb === c.hugeMb && storeHasPath(root, m.huge))) {
    say(`fixture: building the ${c.hugeMb} MiB path (BENCH_HUGE=1) …`);
    const [huge] = nixBuild('huge', ['--arg', 'hugeMb', String(c.hugeMb)], 1_800_000);
    if (!huge) throw new Error('nix-build -A huge returned no path');
    nixCopyTo(root, [huge], undefined, 1_800_000);
    // The chroot store holds it now; don't keep a second copy in /nix/store.
    try {
      run('nix-store', ['--delete', huge], { env: nixEnv(), timeoutMs: 300_000 });
    } catch {
      // still referenced or rooted: leave it
    }
    m.huge = huge;
    m.hugeMb = c.hugeMb;
  }
  writeFileSync(manifestPath, JSON.stringify(m, null, 1) + '\n');
  const fx: Fixture = { dir, root, bigRoot, staticDir, small: m.small, large: m.large, wide: m.wide!, inflateRows: c.inflateRows, dbRows: m.dbRows };
  if (c.huge && m.huge) {
    fx.huge = m.huge;
    fx.hugeMb = m.hugeMb;
  }
  return fx;
}

export function hashPart(storePath: string): string {
  return storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
}

