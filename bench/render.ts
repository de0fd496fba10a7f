/**
 * Re-prints the table of a saved run, re-draws its chart, and rewrites the
 * performance table of docs/performance.md (or the Markdown file named after
 * --readme; the flag kept its name from when the table lived in README.md):
 *   node --disable-warning=ExperimentalWarning bench/render.ts bench/results/latest.json [out.svg] [--readme [docs/performance.md]]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { evaluateTargets, printReport, renderSvg, replaceReadmeTable, type Results } from './lib/report.ts';

const args = process.argv.slice(2);
const at = args.indexOf('--readme');
const DOCS_PAGE = new URL('../docs/performance.md', import.meta.url).pathname;
const readme = at < 0 ? undefined : args[at + 1]?.endsWith('.md') ? args.splice(at, 2)[1] : (args.splice(at, 1), DOCS_PAGE);
const [file, out] = args;
if (!file) {
  process.stderr.write('usage: bench/render.ts RESULTS.json [OUT.svg] [--readme [docs/performance.md]]\n');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8')) as Results;
r.targets = evaluateTargets(r.measurements);
printReport(r, (s) => process.stdout.write(s));
if (out) writeFileSync(out, renderSvg(r));
if (readme) {
  writeFileSync(readme, replaceReadmeTable(readFileSync(readme, 'utf8'), r));
  process.stderr.write(`rewrote the performance table in ${readme}\n`);
}
