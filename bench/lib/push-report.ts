/**
 * bench/push.ts's results: the table, the targets of issue #23 held against
 * references measured in the same run, and the Markdown that bench/render.ts
 * puts into docs/performance.md.
 */
import type { TargetCheck } from './report.ts';

export type PushTarget = 'file://' | 'local store' | 'do-nothing HTTP' | 'origin' | 'edge' | 'do-nothing Worker' | 'eris push' | 'eris push origin';

/** The Nix client a row was pushed with; rows without one (and every run before Nix 2.26 rows) are Nix 2.8's. */
export type PushClient = '2.8' | '2.26';

export interface PushRow {
  /** What was pushed, e.g. "101 paths of 2 KiB". */
  what: string;
  target: PushTarget;
  /** Nix 2.8 when absent. Issue #23's targets are judged on Nix 2.8's rows. */
  client?: PushClient;
  paths: number;
  /** NAR bytes (NarSize summed). */
  bytes: number;
  /** Wall time of the push; undefined when not measured (see note). */
  seconds: number | undefined;
  note?: string;
}

export interface PushResults {
  when: string;
  commit: string;
  kibPerPath: number;
  rows: PushRow[];
  /** First to last `push: imported` log line of the origin, per closure and target. */
  importSpans?: Record<string, { imported: number; seconds: number }>;
  /** The 1-minute load average when the run started and ended (a shared machine: absolute figures follow it). */
  loadAverage?: { start: number; end: number };
  /** The whole run's wall time (building the paths and starting the servers included). */
  elapsedSeconds?: number;
  /**
   * Which `eris push` the eris push rows ran — the packed client (`npm run build:cli`, one JavaScript file) or, in runs
   * before it, the project's TypeScript `eris` — and Node's start-up of each (`eris push --help`, median of 5, seconds).
   */
  erisPushCli?: { packed: boolean; startup: { packed?: number; typescript: number } };
  /** Heaviest functions of the origin's CPU profile (BENCH_PUSH_PROFILE=1). */
  profileTop?: { fn: string; ms: number; pct: number }[];
  targets: TargetCheck[];
}

const TARGETS: PushTarget[] = ['file://', 'local store', 'do-nothing HTTP', 'origin', 'edge', 'do-nothing Worker', 'eris push', 'eris push origin'];
const f = (n: number, d = 2) => n.toFixed(d);
const clientOf = (x: PushRow): PushClient => x.client ?? '2.8';

function seconds(r: PushResults, what: string, target: PushTarget, client: PushClient = '2.8'): number | undefined {
  return r.rows.find((x) => x.what === what && x.target === target && clientOf(x) === client)?.seconds;
}

const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined ? a / b : undefined);

/**
 * What the do-nothing HTTP server says about an origin-direct target: the client's own floor as a multiple of
 * the reference, and the origin as a multiple of that floor (undefined when the floor was not measured).
 */
function floorNote(r: PushResults, what: string, reference: PushTarget): string | undefined {
  const floor = seconds(r, what, 'do-nothing HTTP');
  const ref = seconds(r, what, reference);
  const origin = seconds(r, what, 'origin');
  if (floor === undefined || ref === undefined) return undefined;
  return `the do-nothing HTTP server is ${f(floor / ref)}× ${reference} (${f(floor)} s): Nix 2.8's own floor` +
    (origin === undefined ? '' : `; origin ${f(origin / floor)}× that server`);
}

/** The eris push origin row's seconds and its own note (its time after Node started the command), when measured. */
function cliNote(r: PushResults, what: string): string | undefined {
  const x = r.rows.find((y) => y.what === what && y.target === 'eris push origin' && clientOf(y) === '2.8');
  if (x?.seconds === undefined) return x?.note;
  return `${f(x.seconds)} s${x.note ? `, ${x.note}` : ''}`;
}

/**
 * Issue #23's targets: 101 paths through the edge in ≤ 2 s; origin direct ≤ 5× a local store (closures), ≤ 3× file:// (the
 * big path) — held against both clients origin direct: stock `nix copy` (the origin row) and `eris push` (eris push origin).
 */
export function evaluatePushTargets(r: PushResults): TargetCheck[] {
  const out: TargetCheck[] = [];
  // Judged on Nix 2.8's rows, as the issue measured them; the Nix 2.26 rows are shown in the table.
  const whats = [...new Set(r.rows.filter((x) => clientOf(x) === '2.8').map((x) => x.what))];
  // A target whose measured row was run and failed (its note says so) fails; one not run is skipped.
  const failed = (what: string, target: PushTarget) => r.rows.some((x) => x.what === what && x.target === target && clientOf(x) === '2.8' && x.seconds === undefined && x.note?.startsWith('failed'));
  const check = (id: string, label: string, value: number | undefined, bound: number, unit: string, note?: string, row?: [string, PushTarget]) =>
    out.push({ id, label, value: value ?? null, bound, unit, status: value === undefined ? (row && failed(...row) ? 'fail' : 'skipped') : value <= bound ? 'pass' : 'fail', note });
  for (const what of whats) {
    const paths = r.rows.find((x) => x.what === what)!.paths;
    if (paths > 1) {
      if (paths <= 101) {
        const pt = seconds(r, what, 'do-nothing Worker');
        const wranglerNote = pt === undefined ? undefined : `the do-nothing Worker under the same wrangler dev: ${f(pt)} s`;
        check(`push-edge-${paths}`, `push of ${what} through wrangler dev ≤ 2 s (nix copy)`, seconds(r, what, 'edge'), 2, 's', wranglerNote, [what, 'edge']);
        check(`push-edge-cli-${paths}`, `push of ${what} through wrangler dev ≤ 2 s (eris push)`, seconds(r, what, 'eris push'), 2, 's', undefined, [what, 'eris push']);
      }
      check(`push-origin-${paths}`, `push of ${what}: origin ≤ 5× nix copy to a local store (nix copy)`, ratio(seconds(r, what, 'origin'), seconds(r, what, 'local store')), 5, '×',
        floorNote(r, what, 'local store'), [what, 'origin']);
      check(`push-origin-cli-${paths}`, `push of ${what}: origin ≤ 5× nix copy to a local store (eris push)`,
        ratio(seconds(r, what, 'eris push origin'), seconds(r, what, 'local store')), 5, '×', cliNote(r, what), [what, 'eris push origin']);
    } else {
      check('push-origin-big', `push of ${what}: origin ≤ 3× nix copy --to file:// (nix copy)`, ratio(seconds(r, what, 'origin'), seconds(r, what, 'file://')), 3, '×',
        floorNote(r, what, 'file://'), [what, 'origin']);
      check('push-origin-cli-big', `push of ${what}: origin ≤ 3× nix copy --to file:// (eris push)`,
        ratio(seconds(r, what, 'eris push origin'), seconds(r, what, 'file://')), 3, '×', cliNote(r, what), [what, 'eris push origin']);
      // Runs before bench/push.ts had the eris push target recorded it as the edge's, with a note.
      const edge = r.rows.find((x) => x.what === what && clientOf(x) === '2.8' && (x.target === 'eris push' || x.target === 'edge'));
      check('push-edge-big', `push of ${what} through wrangler dev (eris push, MAX_UPLOAD_BYTES=1e8)`, edge?.seconds, Number.POSITIVE_INFINITY, 's', edge?.seconds === undefined ? edge?.note : undefined, edge && [what, edge.target]);
    }
  }
  return out;
}

/** The push table as Markdown: seconds per target, paths/s or MB/s, and ratios to the references (a line per closure and Nix client). */
export function markdownPush(r: PushResults): string {
  const out: string[] = [];
  const modern = r.rows.some((x) => clientOf(x) === '2.26');
  out.push(`**Push** (\`npm run bench:push\`, ${r.when.slice(0, 16).replace('T', ' ')} UTC, commit ${r.commit}): real Nix 2.8 \`nix copy --to\` of wide closures ` +
    `(paths of ${r.kibPerPath} KiB) and one big path, to a local \`file://\` cache, a local store directory, a do-nothing HTTP binary cache ` +
    '(every PUT drained and answered at once: the client\'s own HTTP upload, the floor for any server), the origin (direct) and through \`wrangler dev\` ' +
    '(the eris edge, and the do-nothing Worker: wrangler dev\'s own cost), and `eris push` through the edge and origin direct (the same proxy)' +
    (r.erisPushCli?.packed ? ` — the packed client (\`npm run build:cli\`, as docs/push.md's CI examples and hook run it; Node starts it in ${f(r.erisPushCli.startup.packed ?? NaN)} s, ` +
      `the project's TypeScript \`eris\` in ${f(r.erisPushCli.startup.typescript)} s)` : '') +
    (modern ? '; the "Nix 2.26" lines push the same kind of paths with Nix 2.26\'s `nix copy --from <a store dir> --to` (a chroot; same origin, same proxy)' : '') +
    '; seconds, the ratios of the origin (`nix copy`, `eris push`) and of the do-nothing HTTP server to the local store (closures) or to `file://` (the big path), and the edge\'s to the do-nothing Worker' +
    (r.loadAverage ? `; load average ${f(r.loadAverage.start, 1)} at the start, ${f(r.loadAverage.end, 1)} at the end (a shared machine: the ratios within the run are what count).` : '.'));
  out.push('');
  out.push(`| pushed | ${TARGETS.join(' | ')} | rate through the edge | origin ÷ reference | eris push origin ÷ reference | do-nothing HTTP ÷ reference | edge ÷ do-nothing Worker |`);
  out.push(`| --- | ${TARGETS.map(() => '---').join(' | ')} | --- | --- | --- | --- | --- |`);
  const lines = new Map<string, { what: string; client: PushClient }>();
  for (const x of r.rows) lines.set(`${x.what}\0${clientOf(x)}`, { what: x.what, client: clientOf(x) });
  for (const { what, client } of lines.values()) {
    const row = (t: PushTarget) => r.rows.find((x) => x.what === what && x.target === t && clientOf(x) === client);
    const s = (t: PushTarget) => row(t)?.seconds;
    const first = TARGETS.map(row).find(Boolean)!;
    // The fastest way through the edge: nix copy, or eris push (the only way for a path over the limit).
    const edge = Math.min(s('edge') ?? Infinity, s('eris push') ?? Infinity);
    const ref = first.paths > 1 ? s('local store') : s('file://');
    const times = (x?: number) => (x === undefined ? '–' : `${f(x)}×`);
    const rate = edge === Infinity ? '–' : first.paths > 1 ? `${f(first.paths / edge, 0)} paths/s` : `${f(first.bytes / 1e6 / edge, 0)} MB/s`;
    const cells = TARGETS.map(row).map((x) => (x?.seconds === undefined ? (x?.note ? `– (${x.note})` : '–') : `${f(x.seconds)}${x.note ? ` (${x.note})` : ''}`));
    out.push(`| ${what}${client === '2.8' ? '' : `, Nix ${client}`} | ${cells.join(' | ')} | ${rate} | ` +
      `${times(ratio(s('origin'), ref))} | ${times(ratio(s('eris push origin'), ref))} | ${times(ratio(s('do-nothing HTTP'), ref))} | ${times(ratio(s('edge'), s('do-nothing Worker')))} |`);
  }
  out.push('');
  for (const t of r.targets) {
    const v = t.value === null ? '–' : t.unit === '×' ? `${f(t.value)}×` : `${f(t.value)} ${t.unit}`;
    out.push(`- ${t.status === 'pass' ? '**PASS**' : t.status === 'fail' ? '**FAIL**' : 'SKIP'} ${t.label}: ${v}${t.note ? ` (${t.note})` : ''}`);
  }
  return out.join('\n') + '\n';
}

export function printPushReport(r: PushResults, write: (s: string) => void): void {
  write(markdownPush(r));
  if (r.elapsedSeconds !== undefined) write(`\nThe whole run took ${r.elapsedSeconds} s.\n`);
  if (r.importSpans) {
    write('\nImports (first to last "push: imported" line of the origin):\n');
    for (const [k, v] of Object.entries(r.importSpans)) write(`  ${k}: ${v.imported} paths in ${f(v.seconds)} s${v.imported > 1 ? ` (${f((1000 * v.seconds) / (v.imported - 1), 1)} ms apart)` : ''}\n`);
  }
  if (r.profileTop) {
    write('\nOrigin CPU profile, self time:\n');
    for (const p of r.profileTop) write(`  ${f(p.ms, 0).padStart(7)} ms ${f(p.pct, 1).padStart(5)}%  ${p.fn}\n`);
  }
}
