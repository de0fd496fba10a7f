/**
 * Re-prints the table of a saved run (and the push figures saved beside it, push-latest.json), re-draws its chart, and rewrites the
 * performance table of docs/performance.md (or the Markdown file named after
 * --readme; the flag kept its name from when the table lived in README.md):
 *   node --disable-warning=ExperimentalWarning bench/render.ts bench/results/latest.json [out.svg] [--readme [docs/performance.md]]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { evaluateTargets, printReport, renderSvg, replaceReadmeTable, type Results } from './lib/report.ts';
import { evaluatePushTargets, markdownPush, type PushResults } from './lib/push-report.ts';

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
// The push figures (bench/push.ts) beside the results file, when there are any.
const pushFile = join(dirname(file), 'push-latest.json');
const push = existsSync(pushFile) ? (JSON.parse(readFileSync(pushFile, 'utf8')) as PushResults) : undefined;
if (push && Array.isArray(push.rows) && push.rows.every((x) => typeof x.what === 'string')) {
  push.targets = evaluatePushTargets(push);
  process.stdout.write('\n' + markdownPush(push));
}
if (readme) {
  writeFileSync(readme, replaceReadmeTable(readFileSync(readme, 'utf8'), r, push?.targets ? markdownPush(push) : undefined));
  process.stderr.write(`rewrote the performance table in ${readme}\n`);
}
