import { describe, expect, it } from 'vitest';
import { DAY_MS, freeable, planRetention, type RetentionGraph, type RetentionRoot } from './plan.ts';

/** A graph from a table: name → [narSize, references…]; lastFetch by name. */
function graph(table: Record<string, [number, ...string[]]>, fetched: Record<string, number> = {}): RetentionGraph & { name(id: number): string } {
  const names = Object.keys(table);
  const id = new Map(names.map((n, i) => [`/nix/store/${n}`, i + 1]));
  return {
    idOf: (p) => id.get(p),
    references: (i) => table[names[i - 1]!]!.slice(1).map((r) => id.get(`/nix/store/${r}`)!),
    narSize: (i) => table[names[i - 1]!]![0],
    lastFetch: (i) => fetched[names[i - 1]!] ?? 0,
    name: (i) => names[i - 1]!,
  };
}

const NOW = 1_800_000_000_000;
const root = (name: string, daysAgo: number, kind: RetentionRoot['kind'] = 'pushed'): RetentionRoot =>
  ({ source: `/gc/${name}`, storePath: `/nix/store/${name}`, kind, pin: kind === 'pin' ? 'main' : undefined, since: NOW - daysAgo * DAY_MS });
const kept = (plan: ReturnType<typeof planRetention>) => plan.decisions.filter((d) => d.keep).map((d) => d.storePath.slice(11)).sort();

describe('retention plan', () => {
  it('keep_days: an old root goes unless a path of its closure was fetched within the period; config roots and pins stay', () => {
    const g = graph({ lib: [10], app: [10, 'lib'], old: [10, 'lib'], tool: [10], sys: [10], pinned: [10] }, { lib: NOW - 2 * DAY_MS });
    const plan = planRetention([root('app', 40), root('old', 40), root('tool', 40), root('sys', 400, 'config'), root('pinned', 400, 'pin'), root('lib', 1)], g, { keepDays: 30 }, NOW);
    // app and old reference lib, fetched 2 days ago: both used; tool was not.
    expect(kept(plan)).toEqual(['app', 'lib', 'old', 'pinned', 'sys']);
    expect(plan.dropped.map((d) => d.why)).toEqual(['unused for 40 days (keep_days = 30)']);
  });

  it('max_bytes: least recently used go first, shared paths counted once', () => {
    // Three roots sharing a 100-byte base; each adds 10 of its own. Union of all three = 130.
    const g = graph({ base: [100], a: [10, 'base'], b: [10, 'base'], c: [10, 'base'] });
    const roots = [root('a', 3), root('b', 1), root('c', 2)];
    // 125 holds two of them (120), not three: the least recently used (a) goes.
    expect(kept(planRetention(roots, g, { maxBytes: 125 }, NOW))).toEqual(['b', 'c']);
    expect(planRetention(roots, g, { maxBytes: 125 }, NOW).keptBytes).toBe(120);
    // Counted per root (110 each) it would hold only one.
    expect(kept(planRetention(roots, g, { maxBytes: 130 }, NOW))).toEqual(['a', 'b', 'c']);
    // Protected roots count first: a pin holding base leaves room for 2 × 10.
    expect(kept(planRetention([...roots, root('base', 100, 'pin')], g, { maxBytes: 120 }, NOW))).toEqual(['b', 'base', 'c']);
  });

  it('a fetch makes an old root the most recently used', () => {
    const g = graph({ a: [10], b: [10] }, { a: NOW - DAY_MS / 2 });
    expect(kept(planRetention([root('a', 50), root('b', 5)], g, { maxBytes: 10 }, NOW))).toEqual(['a']);
  });

  it('freeable: only what no kept root reaches', () => {
    const g = graph({ base: [100], a: [10, 'base'], b: [10, 'base'], own: [5], x: [1, 'own'] });
    const f = freeable(g, [g.idOf('/nix/store/a')!, g.idOf('/nix/store/x')!], [g.idOf('/nix/store/b')!]);
    expect(f.ids.map((i) => g.name(i)).sort()).toEqual(['a', 'own', 'x']);
    expect(f.bytes).toBe(16);
  });

  it('a long chain is walked without recursion', () => {
    const table: Record<string, [number, ...string[]]> = { p0: [1] };
    for (let i = 1; i < 50_000; i++) table[`p${i}`] = [1, `p${i - 1}`];
    const g = graph(table, { p0: NOW });
    const plan = planRetention([root('p49999', 100)], g, { keepDays: 1, maxBytes: 300_000 }, NOW);
    expect(plan.decisions[0]!.keep).toBe(true);
    expect(plan.keptBytes).toBe(50_000);
  });
});
