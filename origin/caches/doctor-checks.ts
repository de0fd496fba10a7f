/**
 * `eris doctor`'s checks of the caches: every cache's roots resolve to valid
 * paths (a dangling link or a collected path is a FAIL: that cache silently
 * serves less than its owner thinks), what its exclusions leave out, and that
 * the running origin serves each cache with the configured keys.
 */
import type { OriginConfig } from '../config/index.ts';
import { publishedReport } from './cli.ts';
import { formatBytes } from '../../shared/bytes.ts';
import type { CacheListing } from '../../shared/cache-listing.ts';
import type { Check } from '../cli/doctor/check.ts';

export async function checkCaches(config: OriginConfig, checks: Check[]): Promise<void> {
  for (const c of config.caches) {
    const what = `cache ${c.name}`;
    let report;
    try {
      report = await publishedReport(config.storeRoot, config.storeDir, c.name, c);
    } catch (e) {
      checks.push({ status: 'FAIL', what, detail: `cannot compute what it publishes: ${(e as Error).message}` });
      continue;
    }
    const head = `${c.name === config.defaultCache ? 'the default cache (bare root), ' : ''}priority ${c.priority}, ${c.signKeyPaths.length} key(s)`;
    if (report.paths === 'all') {
      checks.push({ status: 'ok', what, detail: `${head}; publishes every valid path${report.excluded.length ? ` except ${report.excluded.length} excluded` : ''}` });
    } else {
      const bad = report.roots.filter((r) => r.problem);
      checks.push(bad.length
        ? { status: 'FAIL', what: `${what} roots`, detail: `${bad.map((r) => `${r.source}: ${r.problem}`).join('; ')} — fix or remove the root (eris unpublish, or the config's roots)` }
        : { status: 'ok', what, detail: `${head}; ${report.roots.length} root(s), ${report.paths} paths, ${formatBytes(report.narBytes)}` });
      if (!report.roots.length) checks.push({ status: 'ok', what: `${what} roots`, detail: `none yet: it publishes nothing until \`eris publish PATH... --cache ${c.name}\`` });
    }
    if (report.excluded.length) {
      const direct = report.excluded.filter((e) => e.reason.startsWith('matches'));
      checks.push({
        status: 'ok',
        what: `${what} exclusions`,
        detail: `${report.excluded.length} path(s) not published: ${direct.length} matching ${c.exclude.map((g) => `"${g}"`).join(', ')}, ` +
          `${report.excluded.length - direct.length} because their closure holds one (\`eris published --cache ${c.name}\` lists them)`,
      });
    }
  }
}

/** Compares the running origin's `/v1/caches` with the config: names, keys, priorities. */
export function compareServedCaches(config: OriginConfig, served: CacheListing, keysOf: (paths: string[]) => string[] | undefined, checks: Check[]): void {
  for (const c of config.caches) {
    const s = served.caches.find((x) => x.name === c.name);
    const want = keysOf(c.signKeyPaths);
    if (!s) checks.push({ status: 'FAIL', what: `origin cache ${c.name}`, detail: 'the running origin does not serve it: restart it after changing the config' });
    else if (want && [...want].sort().join(' ') !== [...s.publicKeys].sort().join(' ')) {
      checks.push({ status: 'FAIL', what: `origin cache ${c.name}`, detail: `the running origin signs it with ${s.publicKeys.join(' ')}, the config has ${want.join(' ')}; restart it` });
    } else checks.push({ status: 'ok', what: `origin cache ${c.name}`, detail: `served with the configured key(s), priority ${s.priority}` });
  }
}
