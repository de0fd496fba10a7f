/**
 * The OIDC trust rules as `eris token list` shows them: read from the
 * Worker's wrangler.toml (`OIDC_TRUST` under [vars], JSON text or a table)
 * and checked with the parser the edge uses (shared/oidc-trust.ts), so a rule
 * the edge would refuse is refused here first, with the same message.
 * Rules set elsewhere (`wrangler deploy --var`, the dashboard) are not seen.
 */
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { OidcTrustError, parseOidcTrust, type OidcTrust } from '../../shared/oidc-trust.ts';
import { formatColumns } from '../cli/columns.ts';

/** The trust rules in a wrangler.toml, or undefined when it sets none; throws OidcTrustError naming the file and key. */
export function readTrustRules(wranglerToml: string): OidcTrust | undefined {
  const vars = (parseToml(readFileSync(wranglerToml, 'utf8')) as { vars?: Record<string, unknown> }).vars;
  const raw = vars?.OIDC_TRUST;
  if (raw === undefined || raw === '') return undefined;
  try {
    return parseOidcTrust(raw);
  } catch (err) {
    if (err instanceof OidcTrustError) throw new OidcTrustError(`${wranglerToml}: ${err.message}`);
    throw err;
  }
}

/** The table `eris token list` prints under the tokens: one row per rule, in the order they are tried. */
export function formatTrustRules(trust: OidcTrust, source: string): string {
  const rows = [['RULE', 'ISSUER', 'CLAIMS', 'CACHES', 'SCOPES', 'MINUTES']];
  for (const r of trust.rules) {
    const claims = Object.entries(r.claims).map(([k, vs]) => `${k}=${vs.join('|')}`).join(' ');
    rows.push([r.name, r.issuer, claims, r.caches.join(','), r.scopes.join(','), String(r.minutes)]);
  }
  const issuers = trust.issuers.map((i) => `  ${i.name}: ${i.url} (audience ${i.audience})`).join('\n');
  return `OIDC trust rules (OIDC_TRUST in ${source}), tried in order:\n${formatColumns(rows)}issuers:\n${issuers}\n`;
}
