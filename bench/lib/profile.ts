/** Summarises a V8 .cpuprofile (from `node --cpu-prof`): where the time went. */
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface FnTime { fn: string; where: string; selfMs: number; selfPct: number; totalMs: number; totalPct: number }
export interface ProfileSummary {
  file: string;
  /** Wall time covered by samples, ms. */
  sampledMs: number;
  /** Share of samples not idle. */
  busyPct: number;
  /** Self time by area: our code, hono, node internals, sqlite, GC, … */
  byArea: { area: string; selfMs: number; pct: number }[];
  /** Functions with the most self time. */
  topSelf: FnTime[];
  /** Functions with the most inclusive time (counted once per sample however often on the stack). */
  topTotal: FnTime[];
}

function where(cf: CallFrame): string {
  if (!cf.url) return '';
  const u = cf.url.replace(/^file:\/\//, '');
  const short = u.includes('/node_modules/') ? 'node_modules/' + u.split('/node_modules/').pop() : u.replace(/^.*?\/(origin|shared)\//, '$1/');
  return `${short}:${cf.lineNumber + 1}`;
}

function area(cf: CallFrame): string {
  const n = cf.functionName;
  const u = cf.url;
  if (n === '(idle)') return 'idle';
  if (n === '(garbage collector)') return 'garbage collector';
  if (n === '(program)') return 'V8/native (program)';
  if (n === '(root)') return 'root';
  if (u.includes('/node_modules/hono/')) return 'hono';
  if (u.includes('/node_modules/@hono/node-server/')) return '@hono/node-server';
  if (u.includes('/origin/')) return 'eris origin/';
  if (u.includes('/shared/')) return 'eris shared/';
  if (u.startsWith('node:')) return 'node internals (JS)';
  if (!u) return `native: ${n || '(anonymous)'}`;
  return 'other JS';
}

/** Frames of module loading (and TypeScript stripping): a process's start-up, not its serving. */
const STARTUP = (cf: CallFrame) => cf.url.startsWith('node:internal/modules/');

/**
 * `skipStartup`: leave out samples taken while modules were loading (a short run's profile is otherwise
 * mostly start-up: resolving and type-stripping the origin's modules).
 */
export function summarizeProfile(file: string, top = 15, opts: { skipStartup?: boolean } = {}): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const stack = (id: number | undefined): CallFrame[] => {
    const out: CallFrame[] = [];
    for (let guard = 0; id !== undefined && guard < 10_000; id = parent.get(id), guard++) out.push(byId.get(id)!.callFrame);
    return out;
  };
  const key = (cf: CallFrame) => `${cf.functionName || '(anonymous)'}\u0000${where(cf)}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areas = new Map<string, number>();
  let sum = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const frames = stack(node.id);
    if (opts.skipStartup && frames.some(STARTUP)) continue;
    sum += dt;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') idle += dt;
    self.set(key(cf), (self.get(key(cf)) ?? 0) + dt);
    const a = area(cf);
    areas.set(a, (areas.get(a) ?? 0) + dt);
    const seen = new Set<string>();
    for (const f of frames) {
      const k = key(f);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
  }
  const busy = sum - idle || 1;
  const fmt = (k: string): Pick<FnTime, 'fn' | 'where'> => {
    const [fn, w] = k.split('\u0000');
    return { fn: fn!, where: w! };
  };
  const skip = new Set(['(idle)', '(root)']);
  // A function's row: its own time and the time with what it called, each also as a share of the busy time.
  const rowsOf = (keys: Iterable<string>): FnTime[] => [...keys].filter((k) => !skip.has(fmt(k).fn)).map((k) => ({
    ...fmt(k),
    selfMs: self.get(k) ?? 0,
    selfPct: ((self.get(k) ?? 0) / busy) * 100,
    totalMs: total.get(k) ?? 0,
    totalPct: ((total.get(k) ?? 0) / busy) * 100,
  }));
  const rows = rowsOf(self.keys());
  const totalRows = rowsOf(total.keys());
  return {
    file,
    sampledMs: sum,
    busyPct: sum ? ((sum - idle) / sum) * 100 : 0,
    byArea: [...areas.entries()].filter(([a]) => a !== 'idle').map(([a, ms]) => ({ area: a, selfMs: ms, pct: (ms / busy) * 100 })).sort((x, y) => y.selfMs - x.selfMs),
    topSelf: rows.sort((x, y) => y.selfMs - x.selfMs).slice(0, top),
    topTotal: totalRows.sort((x, y) => y.totalMs - x.totalMs).slice(0, top),
  };
}
