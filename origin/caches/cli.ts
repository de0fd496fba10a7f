/**
 * `eris publish PATH… --cache NAME`, `eris unpublish PATH… --cache NAME`,
 * `eris published --cache NAME [--json]`. They work on the store at
 * `--store-root DIR`, else the config's `store_root`, else `/`; none needs the
 * origin to run (it notices the new roots within a second).
 */
import { parseCommandArgs } from '../cli/args.ts';
import { cachesOfFile, ConfigError, readConfigFile, type CacheConfig, type Raw } from '../config/index.ts';
import { storeDbPath } from '../store/store.ts';
import { publish, PublishError, unpublish } from './gcroots.ts';
import { openClosureDb } from '../store/closure-db.ts';
import { computePublished, type PublishedSet } from './published.ts';
import { resolveCacheRoots } from './roots.ts';
import { cacheNameProblem } from '../../shared/caches.ts';
import { formatBytes } from '../../shared/bytes.ts';
import { rootRetention, type RootRetention } from '../retention/annotate.ts';

const OPTIONS = {
  cache: { type: 'string' },
  'store-root': { type: 'string' },
  'store-dir': { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const PUBLISH_USAGE = `usage:
  eris publish PATH... --cache NAME [--store-root DIR | --config FILE]     add GC roots: the cache serves their closures
  eris unpublish PATH... --cache NAME [--store-root DIR | --config FILE]   remove them
  eris published --cache NAME [--json] [--store-root DIR | --config FILE]  roots, closure sizes, exclusions`;

interface Target {
  storeRoot: string;
  storeDir: string;
  cache: string;
  /** The cache's table in the config, when a config was given. */
  table?: CacheConfig;
}

function target(cmd: string, argv: string[]): { t: Target & { stateDir?: string }; paths: string[]; json: boolean } {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, true);
  if (!values.cache) throw new ConfigError(`eris ${cmd}: --cache NAME is required\n${PUBLISH_USAGE}`);
  if (cmd === 'published' ? positionals.length > 0 : positionals.length === 0) throw new ConfigError(PUBLISH_USAGE);
  if (values.json && cmd !== 'published') throw new ConfigError(`eris ${cmd}: --json does not apply\n${PUBLISH_USAGE}`);
  const file: Raw = values.config ? readConfigFile(values.config, process.env) : {};
  const storeRoot = values['store-root'] ?? (typeof file.storeRoot === 'string' ? file.storeRoot : '/');
  const storeDir = values['store-dir'] ?? (typeof file.storeDir === 'string' ? file.storeDir : '/nix/store');
  let table: CacheConfig | undefined;
  if (values.config) {
    const caches = cachesOfFile(file);
    table = caches.find((c) => c.name === values.cache);
    if (!table) throw new ConfigError(`--cache ${values.cache}: ${values.config} has no such cache (caches: ${caches.map((c) => c.name).join(', ')})`);
  }
  const stateDir = typeof file.stateDir === 'string' ? file.stateDir : undefined;
  return { t: { storeRoot, storeDir, cache: values.cache, table, stateDir }, paths: positionals, json: !!values.json };
}

export async function publishCommand(argv: string[]): Promise<void> {
  const { t, paths } = target('publish', argv);
  if (t.table?.publish === 'all') process.stderr.write(`note: cache ${t.cache} publishes every valid path (publish = "all"); the GC roots still keep the paths\n`);
  for (const p of await publish({ ...t, paths })) process.stdout.write(`published ${p} in ${t.cache}\n`);
}

export function unpublishCommand(argv: string[]): void {
  const { t, paths } = target('unpublish', argv);
  for (const p of unpublish({ ...t, paths })) process.stdout.write(`unpublished ${p} from ${t.cache}\n`);
}


export interface PublishedReport {
  cache: string;
  publish: 'all' | 'roots';
  paths: number | 'all';
  narBytes: number;
  roots: ({ source: string; storePath?: string; problem?: string; closurePaths?: number; closureBytes?: number } & Partial<RootRetention>)[];
  excluded: { storePath: string; reason: string }[];
}

/** What `eris published` and `eris doctor` report about one cache. */
export async function publishedReport(storeRoot: string, storeDir: string, cache: string, table?: CacheConfig): Promise<PublishedReport> {
  const c = table ?? { name: cache, publish: 'roots' as const, roots: [], exclude: [] };
  if (!table) {
    // No config: the gcroots directory is all there is to read; say so if it is not a cache name.
    const problem = cacheNameProblem(cache);
    if (problem) throw new PublishError(`--cache ${cache}: ${problem}`);
  }
  const db = openClosureDb(storeDbPath(storeRoot));
  try {
    const roots = c.publish === 'roots' ? resolveCacheRoots(storeRoot, storeDir, c.name, c.roots) : [];
    const set: PublishedSet = await computePublished(db, { publish: c.publish, roots, exclude: c.exclude });
    const report: PublishedReport = {
      cache,
      publish: c.publish,
      paths: set.kind === 'all' ? 'all' : set.members.size,
      narBytes: set.narBytes,
      roots: [],
      excluded: set.exclusions,
    };
    for (const r of set.roots) {
      if (!r.storePath || r.problem) {
        report.roots.push({ source: r.source, storePath: r.storePath, problem: r.problem });
        continue;
      }
      const one = await computePublished(db, { publish: 'roots', roots: [{ ...r }], exclude: [] });
      report.roots.push({ source: r.source, storePath: r.storePath, closurePaths: one.members.size, closureBytes: one.narBytes });
    }
    return report;
  } finally {
    db.close();
  }
}

export function formatReport(r: PublishedReport): string {
  const lines: string[] = [];
  lines.push(r.paths === 'all'
    ? `cache ${r.cache}: publishes every valid path${r.excluded.length ? ` except ${r.excluded.length} excluded` : ''} (publish = "all")`
    : `cache ${r.cache}: ${r.paths} paths, ${formatBytes(r.narBytes)} published from ${r.roots.length} root${r.roots.length === 1 ? '' : 's'}`);
  if (r.publish === 'roots') {
    lines.push('roots:');
    if (!r.roots.length) lines.push('  (none: add some with `eris publish PATH... --cache ' + r.cache + '`)');
    for (const root of r.roots) {
      lines.push(root.problem
        ? `  ${root.source}: ${root.problem}`
        : `  ${root.source}${root.source === root.storePath ? '' : ` -> ${root.storePath}`}  (closure ${root.closurePaths} paths, ${formatBytes(root.closureBytes!)}` +
          `${root.lastUse ? `; last used ${root.lastUse.slice(0, 10)}` : ''}${root.retention ? `; ${root.retention}` : ''})`);
    }
  }
  if (r.excluded.length) {
    lines.push(`not published (${r.excluded.length}; a path whose closure holds an excluded path is excluded too):`);
    for (const e of r.excluded) lines.push(`  ${e.storePath}: ${e.reason}`);
  }
  return lines.join('\n') + '\n';
}

export async function publishedCommand(argv: string[]): Promise<void> {
  const { t, json } = target('published', argv);
  const report = await publishedReport(t.storeRoot, t.storeDir, t.cache, t.table);
  if (report.publish === 'roots') {
    const table = t.table ?? { name: t.cache, publish: 'roots' as const, roots: [] };
    const retention = await rootRetention({ storeRoot: t.storeRoot, storeDir: t.storeDir, stateDir: t.stateDir, cache: table, caches: [table] });
    for (const r of report.roots) Object.assign(r, retention.get(r.source) ?? {});
  }
  process.stdout.write(json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
}
