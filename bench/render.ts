/**
 * Re-prints the table and re-draws the chart of a saved run:
 *   npx node --disable-warning=ExperimentalWarning bench/render.ts bench/results/latest.json [out.svg]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { evaluateTargets, printReport, renderSvg, type Results } from './lib/report.ts';

const [file, out] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: bench/render.ts RESULTS.json [OUT.svg]\n');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8')) as Results;
r.targets = evaluateTargets(r.measurements);
printReport(r, (s) => process.stdout.write(s));
if (out) writeFileSync(out, renderSvg(r));
