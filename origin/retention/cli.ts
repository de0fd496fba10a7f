/**
 * `eris gc --cache NAME [--dry-run] [--delete] [--json]`: one retention sweep
 * by hand. It reads the config for the store root, the cache's retention keys
 * and state_dir (`--store-root`/`--state-dir` and `--keep-days`/`--max-bytes`
 * set or override them); the origin need not run (it notices changed roots
 * within a second).
 */
import { cachesOfFile, ConfigError, readConfigFile, type Raw } from '../config/index.ts';
import { parseCommandArgs, type CliIo } from '../cli/args.ts';
import { formatBytes } from '../../shared/bytes.ts';
import { cacheNameProblem } from '../../shared/caches.ts';
import { DAY_MS, type RetentionPolicy } from './plan.ts';
import { parseBytes } from '../config/retention.ts';
import { nixStoreRunner, type SweptCache } from './sweep.ts';
import { runGc, type GcOutcome } from './gc.ts';
import { lastFetches } from './last-use.ts';
import { GC_SYNOPSIS } from './synopses.ts';

const OPTIONS = {
  cache: { type: 'string' },
  config: { type: 'string' },
  'store-root': { type: 'string' },
  'store-dir': { type: 'string' },
  'state-dir': { type: 'string' },
  'keep-days': { type: 'string' },
  'max-bytes': { type: 'string' },
  'keep-revisions': { type: 'string' },
  'dry-run': { type: 'boolean' },
  delete: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export interface RetentionContext {
  storeRoot: string;
  storeDir: string;
  stateDir?: string;
  cache: SweptCache;
  caches: SweptCache[];
}

/** The arguments of a retention command: `allowed` beyond the shared flags, exactly `positionals` arguments. */
export function parseRetentionArgs(cmd: string, usage: string, argv: string[], allowed: readonly (keyof typeof OPTIONS)[], positionals: number) {
  const parsed = parseCommandArgs(argv, OPTIONS, true);
  const { values } = parsed;
  for (const k of Object.keys(values)) {
    if (!['cache', 'config', 'store-root', 'store-dir', ...allowed].includes(k)) throw new ConfigError(`eris ${cmd}: --${k} does not apply\nusage:\n${usage}`);
  }
  if (!values.cache) throw new ConfigError(`eris ${cmd}: --cache NAME is required\nusage:\n${usage}`);
  if (parsed.positionals.length !== positionals) throw new ConfigError(`usage:\n${usage}`);
  return { values, positionals: parsed.positionals };
}

/** The store, the cache's retention and state_dir from the config (only the keys retention reads: secrets need not be readable). */
export function retentionContext(values: { cache?: string; config?: string; 'store-root'?: string; 'store-dir'?: string; 'state-dir'?: string; 'keep-days'?: string; 'max-bytes'?: string }): RetentionContext {
  const name = values.cache!;
  const file: Raw = values.config ? readConfigFile(values.config, process.env) : {};
  const storeRoot = values['store-root'] ?? (typeof file.storeRoot === 'string' ? file.storeRoot : '/');
  const storeDir = values['store-dir'] ?? (typeof file.storeDir === 'string' ? file.storeDir : '/nix/store');
  const stateDir = values['state-dir'] ?? (typeof file.stateDir === 'string' ? file.stateDir : undefined);
  let caches: SweptCache[] = [];
  if (values.config) caches = cachesOfFile(file);
  else {
    const problem = cacheNameProblem(name);
    if (problem) throw new ConfigError(`--cache ${name}: ${problem}`);
    caches = [{ name, publish: 'roots', roots: [] }];
  }
  const found = caches.find((c) => c.name === name);
  if (!found) throw new ConfigError(`--cache ${name}: ${values.config} has no such cache (caches: ${caches.map((c) => c.name).join(', ')})`);
  const cache: SweptCache = { ...found };
  if (values['keep-days'] !== undefined) {
    const n = Number(values['keep-days']);
    if (!Number.isInteger(n) || n < 1) throw new ConfigError('--keep-days: expected a whole number of days, at least 1');
    cache.keepDays = n;
  }
  if (values['max-bytes'] !== undefined) {
    const n = parseBytes(values['max-bytes']);
    if (n === undefined || n < 1) throw new ConfigError('--max-bytes: expected a number of bytes, e.g. 53687091200 or 50G');
    cache.maxBytes = n;
  }
  return { storeRoot, storeDir, stateDir, cache, caches: caches.map((c) => (c.name === name ? cache : c)) };
}

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export function policyText(p: RetentionPolicy): string {
  const parts = [];
  if (p.keepDays !== undefined) parts.push(`keep_days = ${p.keepDays}`);
  if (p.maxBytes !== undefined) parts.push(`max_bytes = ${formatBytes(p.maxBytes)}`);
  return parts.length ? parts.join(', ') : 'no keep_days or max_bytes: every root stays';
}

export function formatGc(o: GcOutcome, opts: { dryRun: boolean; delete: boolean }): string {
  const r = o.report;
  const lines: string[] = [];
  const counts = { pin: 0, config: 0, pushed: 0 };
  for (const d of r.plan.decisions) counts[d.kind]++;
  lines.push(`cache ${r.cache}: ${policyText(r.policy)}; ${counts.pushed} pushed or published roots, ${counts.pin} pin revisions, ${counts.config} config roots; ${r.plan.dropped.length} to drop`);
  for (const d of r.plan.dropped) {
    const used = d.lastUse ? `last used ${day(d.lastUse)} (${Math.max(0, Math.floor((r.now - d.lastUse) / DAY_MS))} days ago)` : 'not valid';
    lines.push(`  drop ${d.source} -> ${d.storePath}  ${used}: ${d.why}`);
  }
  if (r.plan.overBudget) lines.push(`warning: ${r.plan.overBudget}`);
  lines.push(`kept: ${r.plan.decisions.length - r.plan.dropped.length} roots, ${formatBytes(r.plan.keptBytes)} of closures (shared paths once)`);
  lines.push(`the store can free ${r.freeable.paths.length} paths, ${formatBytes(r.freeable.bytes)} once these roots are gone (paths no other root eris sees holds; Nix decides)`);
  if (opts.dryRun) lines.push('dry run: nothing changed');
  else {
    lines.push(`dropped ${o.removed.length} root${o.removed.length === 1 ? '' : 's'}${o.removed.length < r.plan.dropped.filter((d) => d.kind === 'pushed').length ? ' (the others were renewed meanwhile)' : ''}`);
    if (o.deleted) {
      const alive = o.deleted.alive.length ? `; ${o.deleted.alive.length} still alive (held by another root or in use), left alone` : '';
      lines.push(`nix-store --delete: ${o.deleted.deleted.length} paths deleted${o.deleted.summary ? ` (${o.deleted.summary})` : ''}${alive}`);
    } else if (!opts.delete && o.removed.length) lines.push('Nix frees the space at its next garbage collection (nix.gc), or now with eris gc --delete');
  }
  return lines.join('\n') + '\n';
}

export async function gcCommand(argv: string[], io: CliIo): Promise<void> {
  const { values } = parseRetentionArgs('gc', GC_SYNOPSIS, argv, ['state-dir', 'keep-days', 'max-bytes', 'dry-run', 'delete', 'json'], 0);
  const ctx = retentionContext(values);
  const dryRun = !!values['dry-run'];
  const outcome = await runGc({
    target: { storeRoot: ctx.storeRoot, storeDir: ctx.storeDir, cache: ctx.cache, caches: ctx.caches, lastFetches: lastFetches(ctx.stateDir, ctx.cache.name) },
    stateDir: ctx.stateDir,
    dryRun,
    delete: !!values.delete,
    run: nixStoreRunner(ctx.storeRoot),
  });
  io.stdout.write(values.json ? JSON.stringify({ ...outcome, dryRun }, null, 2) + '\n' : formatGc(outcome, { dryRun, delete: !!values.delete }));
}
