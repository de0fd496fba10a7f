/**
 * `eris doctor --edge-url` with a token: what the edge tells clients about
 * the caches the token may use, merged from every origin behind it (the
 * edge's GET /v1/caches). Fails when an origin did not answer the edge (the
 * edge then hands out no key list: 503 naming it), when origins disagree on
 * a cache's priority or default flag (clients get the first origin's word),
 * and when a cache this box serves reaches clients without this box's keys.
 */
import type { Check } from './check.ts';
import { parseCacheListing, type CacheListing } from '../../../shared/cache-listing.ts';

const MISSING_ORIGINS_HEADER = 'x-eris-missing-origins';

/**
 * `ownKeys`: this box's public keys per cache name (from its config), to see
 * that clients of the edge get them; undefined when the config did not load.
 */
export async function checkEdgeCaches(edge: string, auth: Record<string, string>, ownKeys: Map<string, string[]> | undefined, timeoutMs: number): Promise<Check[]> {
  const what = 'edge caches';
  let res: Response;
  let body: string;
  try {
    res = await fetch(`${edge}/v1/caches`, { headers: auth, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    body = await res.text();
  } catch (e) {
    return [{ status: 'FAIL', what, detail: `${edge}/v1/caches: ${(e as Error).name === 'TimeoutError' ? 'no answer in time' : (e as Error).message}` }];
  }
  if (res.status === 401) return []; // the token check above has said so
  if (res.status === 503 && res.headers.has(MISSING_ORIGINS_HEADER)) {
    return [{
      status: 'FAIL',
      what,
      detail: `origin(s) ${res.headers.get(MISSING_ORIGINS_HEADER)} did not answer the edge, so it hands out no key list (503) until they do: ` +
        'start them, or fix their tunnel, hostname or EDGE_SECRET_<ID> (`npx wrangler tail` shows why)',
    }];
  }
  let list: CacheListing;
  try {
    if (res.status !== 200) throw new Error(`status ${res.status}: ${body.trim().split('\n')[0]?.slice(0, 120)}`);
    list = parseCacheListing(body);
  } catch (e) {
    return [{ status: 'FAIL', what, detail: `${edge}/v1/caches: ${(e as Error).message}` }];
  }
  const checks: Check[] = [];
  for (const d of list.disagreements ?? []) {
    const values = Object.entries(d.values).map(([origin, v]) => `${origin}: ${v}`).join(', ');
    const first = list.caches.find((c) => c.name === d.cache);
    checks.push({
      status: 'FAIL',
      what: `edge cache ${d.cache}`,
      detail: `the origins disagree on its ${d.field} (${values}); clients are told ${first ? String(first[d.field]) : 'the first origin\'s'}. ` +
        `Give it the same ${d.field === 'default' ? 'default_cache' : 'priority'} on every box`,
    });
  }
  for (const c of list.caches) {
    const own = ownKeys?.get(c.name);
    const lacking = own?.filter((k) => !c.publicKeys.includes(k)) ?? [];
    if (lacking.length) {
      checks.push({ status: 'FAIL', what: `edge cache ${c.name}`, detail: `clients are told to trust ${c.publicKeys.join(' ')}, not this box's ${lacking.join(' ')}: the edge does not reach this box, or reaches an older run of it` });
    } else if (!(list.disagreements ?? []).some((d) => d.cache === c.name)) {
      checks.push({ status: 'ok', what: `edge cache ${c.name}`, detail: `priority ${c.priority}, ${c.publicKeys.length} key(s) from every origin${own ? ', this box\'s included' : ''}` });
    }
  }
  if (!list.caches.length) checks.push({ status: 'FAIL', what, detail: 'the token may use no cache at this edge' });
  return checks;
}
