/**
 * OIDC trust rules: which CI identities may exchange their identity token (a
 * JWT from GitHub Actions, GitLab CI, …) for a short-lived eris token, and
 * what that token may do. The Worker variable OIDC_TRUST holds them (a JSON
 * string, or a table under [vars] in wrangler.toml); the edge parses it once
 * per isolate with parseOidcTrust and refuses to start on a bad one, and
 * `eris token list` prints them from the same wrangler.toml with the same
 * parser. Pure: no I/O, runs in Node and in workerd.
 *
 *   {
 *     "issuers": [{ "name": "github", "url": "https://token.actions.githubusercontent.com",
 *                   "audience": "https://cache.example.com" }],
 *     "rules": [{ "name": "app-main", "issuer": "github",
 *                 "claims": { "repository_id": "123456789", "ref": "refs/heads/main" },
 *                 "caches": ["ci"], "scopes": ["write"], "minutes": 15 }]
 *   }
 *
 * A rule matches a verified token when every claim it lists matches: a number
 * or a string without `*` must equal the claim (GitHub's numeric ids arrive as
 * strings; both spellings match), a string with `*` is a glob (`*` = any
 * characters, `/` included), a list matches when any element does. Rules are
 * tried in order; the first that matches grants. No rule, no token.
 */
import { cacheNameProblem } from './caches.ts';
import { CACHE_SCOPES, type TokenScope } from './contract.ts';

export type ClaimValue = string | number;

export interface OidcIssuer {
  /** Short name: the rules refer to it, and exchanged tokens' users start with it (`github:`). */
  name: string;
  /** The `iss` the tokens carry, exactly; the discovery document is at `<url>/.well-known/openid-configuration`. */
  url: string;
  /** The `aud` the tokens must carry (GitHub: the `audience` the job asks for; GitLab: `id_tokens.<VAR>.aud`). */
  audience: string;
}

export interface OidcRule {
  /** Unique; issued tokens name their rule, and a token whose rule is gone (or no longer grants) is refused at once. */
  name: string;
  issuer: string;
  /** Claim name → accepted value(s). */
  claims: Record<string, ClaimValue[]>;
  caches: string[];
  /** Always as given plus `read` when `write` is given (write implies read, as for stored tokens). */
  scopes: TokenScope[];
  /** Lifetime of an issued token. */
  minutes: number;
}

export interface OidcTrust {
  issuers: OidcIssuer[];
  rules: OidcRule[];
}

export class OidcTrustError extends Error {
  override name = 'OidcTrustError';
}

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const CLAIM_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
export const DEFAULT_MINUTES = 15;
export const MAX_MINUTES = 12 * 60;
/** Most caches one rule may grant (an issued token carries them). */
export const MAX_RULE_CACHES = 8;

/** Hosts a test issuer may use over plain http (loopback only; a Worker on Cloudflare cannot reach them). */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Why `value` is not a URL an issuer (or its JWKS) may be fetched from, or undefined. https only —
 * plain http is accepted for a loopback host alone, which is how the tests run a local issuer and
 * which a deployed Worker can never reach.
 */
export function issuerUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.username || url.password || url.search || url.hash) return 'must not carry credentials, a query or a fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return undefined;
  return 'must be https (plain http only for a loopback test issuer)';
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(key: string, o: Record<string, unknown>, allowed: string[]): void {
  const unknown = Object.keys(o).find((k) => !allowed.includes(k));
  if (unknown) throw new OidcTrustError(`${key}.${unknown}: unknown key (${allowed.join(', ')})`);
}

function claimValues(key: string, v: unknown): ClaimValue[] {
  const list = Array.isArray(v) ? v : [v];
  if (!list.length) throw new OidcTrustError(`${key}: an empty list matches nothing`);
  for (const x of list) {
    if (typeof x === 'number' ? !Number.isSafeInteger(x) : typeof x !== 'string' || x === '') {
      throw new OidcTrustError(`${key}: expected a non-empty string, a whole number, or a list of them`);
    }
  }
  return list as ClaimValue[];
}

/**
 * Claims that say *who* runs the job (GitHub, GitLab, and `sub` for any issuer). A rule must pin one:
 * a rule on `ref` alone would hand every repository on GitHub a token.
 */
export const IDENTITY_CLAIMS: readonly string[] = ['sub', 'repository', 'repository_id', 'repository_owner', 'repository_owner_id',
  'job_workflow_ref', 'workflow_ref', 'project_path', 'project_id', 'namespace_path', 'namespace_id'];

/** Whether a claim value pins something: a number, or a string with at least one character before any `*`. */
const pins = (v: ClaimValue) => typeof v === 'number' || !v.startsWith('*');

/** Parses OIDC_TRUST (JSON text or an already parsed object); throws OidcTrustError naming the offending key. */
export function parseOidcTrust(raw: unknown): OidcTrust {
  let v = raw;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      throw new OidcTrustError('OIDC_TRUST must be JSON: {"issuers": [...], "rules": [...]}');
    }
  }
  if (!isObject(v)) throw new OidcTrustError('OIDC_TRUST must be an object {"issuers": [...], "rules": [...]}');
  onlyKeys('OIDC_TRUST', v, ['issuers', 'rules']);
  if (!Array.isArray(v.issuers) || !v.issuers.length) throw new OidcTrustError('OIDC_TRUST.issuers must be a non-empty list');
  if (!Array.isArray(v.rules)) throw new OidcTrustError('OIDC_TRUST.rules must be a list');
  const issuers = v.issuers.map((entry: unknown, i): OidcIssuer => {
    const key = `OIDC_TRUST.issuers[${i}]`;
    if (!isObject(entry)) throw new OidcTrustError(`${key} must be an object {"name", "url", "audience"}`);
    onlyKeys(key, entry, ['name', 'url', 'audience']);
    if (typeof entry.name !== 'string' || !NAME_RE.test(entry.name)) throw new OidcTrustError(`${key}.name must be 1-32 of a-z 0-9 _ - (starting with a letter or digit)`);
    if (typeof entry.url !== 'string') throw new OidcTrustError(`${key}.url must be the issuer's URL (its tokens' "iss")`);
    const problem = issuerUrlProblem(entry.url);
    if (problem) throw new OidcTrustError(`${key}.url ${problem}`);
    if (typeof entry.audience !== 'string' || !entry.audience) throw new OidcTrustError(`${key}.audience must be the "aud" eris expects (e.g. the cache's URL)`);
    return { name: entry.name, url: entry.url, audience: entry.audience };
  });
  for (const [i, a] of issuers.entries()) {
    if (issuers.findIndex((b) => b.name === a.name) !== i) throw new OidcTrustError(`OIDC_TRUST.issuers[${i}].name: "${a.name}" is used twice`);
    if (issuers.findIndex((b) => b.url === a.url) !== i) throw new OidcTrustError(`OIDC_TRUST.issuers[${i}].url: ${a.url} is listed twice`);
  }
  const rules = v.rules.map((entry: unknown, i): OidcRule => {
    const key = `OIDC_TRUST.rules[${i}]`;
    if (!isObject(entry)) throw new OidcTrustError(`${key} must be an object {"name", "issuer", "claims", "caches", "scopes", "minutes"?}`);
    onlyKeys(key, entry, ['name', 'issuer', 'claims', 'caches', 'scopes', 'minutes']);
    if (typeof entry.name !== 'string' || !NAME_RE.test(entry.name)) throw new OidcTrustError(`${key}.name must be 1-32 of a-z 0-9 _ - (starting with a letter or digit)`);
    if (typeof entry.issuer !== 'string' || !issuers.some((s) => s.name === entry.issuer)) {
      throw new OidcTrustError(`${key}.issuer must name one of the issuers (${issuers.map((s) => s.name).join(', ')})`);
    }
    if (!isObject(entry.claims)) throw new OidcTrustError(`${key}.claims must be an object {"claim": value or [values]}`);
    const claims: Record<string, ClaimValue[]> = {};
    for (const [name, value] of Object.entries(entry.claims)) {
      if (!CLAIM_RE.test(name)) throw new OidcTrustError(`${key}.claims.${name}: not a claim name`);
      claims[name] = claimValues(`${key}.claims.${name}`, value);
    }
    // A rule that pins no identity would hand every repository on the issuer (all of GitHub) a token.
    if (!IDENTITY_CLAIMS.some((name) => claims[name]?.every(pins))) {
      throw new OidcTrustError(`${key}.claims must pin who may push: one of ${IDENTITY_CLAIMS.join(', ')} with values not starting with * (e.g. "repository_id": "123456", or "repository": "acme/*")`);
    }
    if (!Array.isArray(entry.caches) || !entry.caches.length || entry.caches.length > MAX_RULE_CACHES) {
      throw new OidcTrustError(`${key}.caches must list 1-${MAX_RULE_CACHES} cache names`);
    }
    for (const c of entry.caches) {
      const problem = typeof c === 'string' ? cacheNameProblem(c) : 'expected a cache name';
      if (problem) throw new OidcTrustError(`${key}.caches: ${JSON.stringify(c)}: ${problem}`);
    }
    const given = entry.scopes;
    if (!Array.isArray(given) || !given.length || !given.every((s) => CACHE_SCOPES.includes(s as TokenScope))) {
      throw new OidcTrustError(`${key}.scopes must list ${CACHE_SCOPES.join(' and/or ')}`);
    }
    const scopes = CACHE_SCOPES.filter((s) => given.includes(s) || (s === 'read' && given.includes('write')));
    const minutes = entry.minutes ?? DEFAULT_MINUTES;
    if (typeof minutes !== 'number' || !Number.isInteger(minutes) || minutes < 1 || minutes > MAX_MINUTES) {
      throw new OidcTrustError(`${key}.minutes must be a whole number of minutes (1..${MAX_MINUTES})`);
    }
    return { name: entry.name, issuer: entry.issuer, claims, caches: [...new Set(entry.caches as string[])], scopes, minutes };
  });
  for (const [i, r] of rules.entries()) {
    if (rules.findIndex((b) => b.name === r.name) !== i) throw new OidcTrustError(`OIDC_TRUST.rules[${i}].name: "${r.name}" is used twice`);
  }
  return { issuers, rules };
}

function globMatches(glob: string, value: string): boolean {
  const parts = glob.split('*');
  if (parts.length === 1) return glob === value;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (value.length < first.length + last.length || !value.startsWith(first) || !value.endsWith(last)) return false;
  let at = first.length;
  for (const mid of parts.slice(1, -1)) {
    const found = value.indexOf(mid, at);
    if (found < 0 || found + mid.length > value.length - last.length) return false;
    at = found + mid.length;
  }
  return true;
}

/** Whether one claim of a token matches a rule's accepted values. Only strings and numbers ever match. */
export function claimMatches(accepted: ClaimValue[], claim: unknown): boolean {
  if (typeof claim !== 'string' && typeof claim !== 'number') return false;
  const value = String(claim);
  return accepted.some((a) => (typeof a === 'number' ? String(a) === value : globMatches(a, value)));
}

/** The first rule of `issuer` whose every claim matches the (verified) claims, or undefined. */
export function matchRule(trust: OidcTrust, issuer: string, claims: Record<string, unknown>): OidcRule | undefined {
  return trust.rules.find((r) => r.issuer === issuer && Object.entries(r.claims).every(([name, accepted]) => claimMatches(accepted, claims[name])));
}

/** Longest user name an exchanged token may carry (it travels inside the token and in USER_HEADER). */
export const MAX_OIDC_USER = 160;

/**
 * The user an exchanged token acts as, for logs and usage: `<issuer name>:<what>[@<ref>]`, where
 * `what` is the repository (GitHub), the project path (GitLab) or else the subject —
 * e.g. `github:acme/app@refs/heads/main`. Undefined when there is nothing usable or it is too long.
 */
export function oidcUser(issuer: string, claims: Record<string, unknown>): string | undefined {
  const str = (k: string) => (typeof claims[k] === 'string' && claims[k] !== '' ? (claims[k] as string) : undefined);
  const what = str('repository') ?? str('project_path') ?? str('sub');
  if (!what) return undefined;
  const ref = str('ref');
  const user = `${issuer}:${what}${ref ? `@${ref}` : ''}`;
  // Printable ASCII only: it becomes an HTTP header value and a log field.
  return user.length <= MAX_OIDC_USER && /^[\x21-\x7e]+$/.test(user) ? user : undefined;
}
