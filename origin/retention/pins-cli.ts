/**
 * `eris pin NAME PATH --cache NAME [--keep-revisions N]`, `eris unpin NAME --cache NAME`,
 * `eris pins --cache NAME [--json]`: pins on the box (over HTTP: `eris push --pin`). They read the
 * store root from the config (or `--store-root`); the origin need not run.
 */
import type { CliIo } from '../cli/args.ts';
import { ConfigError } from '../config/validate.ts';
import { formatBytes } from '../../shared/bytes.ts';
import { openStoreForCommand, storePathOf } from '../caches/gcroots.ts';
import { keepRevisionsProblem } from '../../shared/pins.ts';
import { DAY_MS, markClosure } from './plan.ts';
import { dbGraph } from './sweep.ts';
import { listPins, pin, PinError, unpin } from './pins.ts';
import { parseRetentionArgs, retentionContext } from './cli.ts';
import { formatColumns } from '../cli/columns.ts';
import { PIN_SYNOPSIS, PINS_SYNOPSIS, UNPIN_SYNOPSIS } from './synopses.ts';

/** Closure NAR bytes of each store path (0 when not valid). */
function closureBytes(storeRoot: string, storePaths: readonly string[]): number[] {
  const db = openStoreForCommand(storeRoot);
  try {
    const g = dbGraph(db, new Map());
    return storePaths.map((p) => {
      const id = g.idOf(p);
      return id === undefined ? 0 : markClosure(g, new Set(), id);
    });
  } finally {
    db.close();
  }
}

export function pinCommand(argv: string[], io: CliIo): void {
  const { values, positionals } = parseRetentionArgs('pin', PIN_SYNOPSIS, argv, ['keep-revisions'], 2);
  const ctx = retentionContext(values);
  const [name, arg] = positionals as [string, string];
  const keepRevisions = values['keep-revisions'] === undefined ? undefined : Number(values['keep-revisions']);
  const bad = keepRevisions === undefined ? undefined : keepRevisionsProblem(keepRevisions);
  if (bad) throw new ConfigError(`--${bad}`);
  const storePath = storePathOf(ctx.storeDir, arg);
  const db = openStoreForCommand(ctx.storeRoot);
  try {
    if (!db.byPath(storePath)) throw new PinError(`${storePath} is not valid in the store at ${ctx.storeRoot} (push or copy it there first)`);
  } finally {
    db.close();
  }
  const r = pin({ storeRoot: ctx.storeRoot, storeDir: ctx.storeDir, cache: ctx.cache.name, name, storePath, keepRevisions });
  io.stdout.write(`${r.added ? 'pinned' : 'already pinned'} ${name} -> ${storePath} in ${ctx.cache.name} (revision ${r.revision.seq})\n`);
  for (const old of r.removed) io.stdout.write(`  let go of revision ${old.seq} -> ${old.storePath} (keep-revisions ${keepRevisions})\n`);
}

export function unpinCommand(argv: string[], io: CliIo): void {
  const { values, positionals } = parseRetentionArgs('unpin', UNPIN_SYNOPSIS, argv, [], 1);
  const ctx = retentionContext(values);
  const gone = unpin({ storeRoot: ctx.storeRoot, storeDir: ctx.storeDir, cache: ctx.cache.name, name: positionals[0]! });
  io.stdout.write(`unpinned ${positionals[0]} in ${ctx.cache.name} (${gone.length} revision${gone.length === 1 ? '' : 's'})\n`);
}

export function pinsCommand(argv: string[], io: CliIo): void {
  const { values } = parseRetentionArgs('pins', PINS_SYNOPSIS, argv, ['json'], 0);
  const ctx = retentionContext(values);
  const now = Date.now();
  const pins = listPins(ctx.storeRoot, ctx.storeDir, ctx.cache.name);
  const rows = pins.flatMap((p) => p.revisions.map((r) => ({ pin: p.name, revision: r.seq, storePath: r.storePath, pinnedAt: new Date(r.since).toISOString(), ageDays: Math.floor((now - r.since) / DAY_MS) })));
  const sizes = closureBytes(ctx.storeRoot, rows.map((r) => r.storePath));
  const full = rows.map((r, i) => ({ ...r, closureBytes: sizes[i]! }));
  if (values.json) return void io.stdout.write(JSON.stringify({ cache: ctx.cache.name, pins: full }, null, 2) + '\n');
  if (!full.length) return void io.stdout.write(`cache ${ctx.cache.name}: no pins (add one with eris pin NAME PATH --cache ${ctx.cache.name})\n`);
  const table = [['PIN', 'REV', 'AGE', 'CLOSURE', 'PATH'], ...full.map((r) => [r.pin, String(r.revision), `${r.ageDays}d`, formatBytes(r.closureBytes), r.storePath])];
  io.stdout.write(formatColumns(table));
}
