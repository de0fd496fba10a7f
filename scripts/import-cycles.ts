/**
 * Fails (exit 1) when the TypeScript sources import each other in a cycle, type-only imports
 * included: a cycle makes initialisation order matter (the ReferenceError that
 * config ↔ push/config once threw) and hides which module depends on which.
 * Usage: node scripts/import-cycles.ts [DIR…]   (default: origin shared worker test bench)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const dirs = process.argv.slice(2).length ? process.argv.slice(2) : ['origin', 'shared', 'worker', 'test', 'bench'];
const SPEC = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"](\.[^'"]+)['"]|(?:^|[\s;(])import\s*\(\s*['"](\.[^'"]+)['"]\s*\)|^import\s+['"](\.[^'"]+)['"]/gm;

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (/\.(ts|mts)$/.test(e.name) && !e.name.endsWith('.d.ts')) yield p;
  }
}

/** Each file's relative imports, resolved to absolute paths; comments are stripped first. */
const graph = new Map<string, string[]>();
for (const d of dirs) for (const file of sources(resolve(ROOT, d))) {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  graph.set(file, [...text.matchAll(SPEC)].map((m) => resolve(dirname(file), (m[1] ?? m[2] ?? m[3])!)));
}

/** Tarjan's strongly connected components: every component of more than one file (or a self-import) is a cycle. */
const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>();
const cycles: string[][] = [];
let next = 0;
function visit(v: string): void {
  index.set(v, next); low.set(v, next++); stack.push(v); on.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
    else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
  }
  if (low.get(v) !== index.get(v)) return;
  const scc: string[] = [];
  let w: string;
  do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
  if (scc.length > 1 || graph.get(v)!.includes(v)) cycles.push(scc);
}
for (const v of graph.keys()) if (!index.has(v)) visit(v);

for (const scc of cycles) {
  const names = scc.map((f) => relative(ROOT, f)).sort();
  process.stderr.write(`import cycle among ${names.length} files:\n${names.map((n) => `  ${n} → ${
    (graph.get(resolve(ROOT, n)) ?? []).filter((t) => scc.includes(t)).map((t) => relative(ROOT, t)).join(', ')}`).join('\n')}\n`);
}
if (cycles.length) process.exit(1);
process.stdout.write(`no import cycles among ${graph.size} files\n`);
