/**
 * `eris push [--cache NAME] PATH…`: push store paths and their closures to a
 * cache through the edge, any size (docs/push.md). The token comes from
 * `--netrc FILE`, else `ERIS_TOKEN`, else the netrc Nix would use
 * (~/.netrc, /etc/nix/netrc) for the edge's host — or, with `--oidc`, from
 * the CI job's own identity exchanged at the edge (client/oidc.ts,
 * docs/oidc.md); the edge from `--edge-url` or `ERIS_URL`.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CACHE_NAME, isCacheName } from '../../shared/caches.ts';
import { ConfigError } from '../config/validate.ts';
import { parseCommandArgs } from '../cli/args.ts';
import { basicAuthorization, readNetrcEntry } from '../cli/netrc.ts';
import { createEdgeClient } from './client/edge.ts';
import { createProgress } from './client/progress.ts';
import { formatBytes } from '../../shared/bytes.ts';
import { DEFAULT_PART_BYTES, runPush, type PushSummary } from './client/run.ts';
import { DEFAULT_BATCH_PATHS } from './client/batch.ts';
import { exchangeOidcToken, OidcExchangeError } from './client/oidc.ts';
import { pinAfterPush, pinOptions } from '../retention/push-pin.ts';

export const PUSH_USAGE = `usage: eris push [--cache NAME] [--edge-url URL] [--netrc FILE | --oidc [--oidc-audience AUD]] [--store STORE] [--jobs N]
                 [--part-size BYTES] [--batch-paths N] [--retry-seconds N] [--pin NAME [--keep-revisions N]] [--dry-run] [--json] PATH...
  pushes PATH... and their closures to cache NAME (default: "default") through the edge at URL (or $ERIS_URL),
  any size: small paths go several to a request (at most N, default 250; 0: one path a request),
  NARs over the edge's limit go in parts, a cut push resumes where the origin stopped.
  token: --netrc FILE, else $ERIS_TOKEN, else ~/.netrc or /etc/nix/netrc (the edge host's machine line);
  --oidc: none stored — the CI job's identity token (GitHub Actions' id-token, or $ERIS_OIDC_TOKEN from GitLab's
  id_tokens:) is exchanged at the edge for a short-lived one; the audience is the edge's URL unless --oidc-audience
  --pin NAME: once pushed, PATH (one) becomes the newest revision of pin NAME, which retention keeps; with
  --keep-revisions N only the newest N revisions of NAME stay (docs/retention.md)`;

const OPTIONS = {
  cache: { type: 'string' },
  'edge-url': { type: 'string' },
  netrc: { type: 'string' },
  store: { type: 'string' },
  jobs: { type: 'string' },
  'part-size': { type: 'string' },
  'batch-paths': { type: 'string' },
  'retry-seconds': { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  oidc: { type: 'boolean' },
  'oidc-audience': { type: 'string' },
  pin: { type: 'string' },
  'keep-revisions': { type: 'string' },
} as const;

const DEFAULT_NETRCS = () => [join(homedir(), '.netrc'), '/etc/nix/netrc'];

/** The Authorization header for `host`: a netrc line (Basic, as Nix sends it) or ERIS_TOKEN (Bearer). */
export function pushAuthorization(host: string, netrcFile: string | undefined, env: NodeJS.ProcessEnv): string {
  const fromNetrc = (file: string, required: boolean): string | undefined => {
    const entry = readNetrcEntry(file, host, { optional: !required });
    return entry && basicAuthorization(entry.login, entry.password);
  };
  if (netrcFile !== undefined) return fromNetrc(netrcFile, true)!;
  if (env.ERIS_TOKEN) return `Bearer ${env.ERIS_TOKEN}`;
  for (const f of DEFAULT_NETRCS()) {
    const a = fromNetrc(f, false);
    if (a) return a;
  }
  throw new ConfigError(`no token: set ERIS_TOKEN, or pass --netrc FILE holding "machine ${host} login USER password TOKEN"`);
}

/** The Authorization header of a token exchanged for the CI job's identity (shared/oidc-exchange.ts). */
async function oidcAuthorization(edgeUrl: string, audience: string | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const t = await exchangeOidcToken({ edgeUrl, audience, env });
    process.stderr.write(`eris push: OIDC token for ${t.user} (caches ${t.caches.join(',')}; ${t.scopes.join(',')}; until ${t.expires})\n`);
    return basicAuthorization(t.login, t.token);
  } catch (err) {
    if (err instanceof OidcExchangeError) throw new Error(`--oidc: ${err.message}`);
    throw err;
  }
}

const positiveInt = (flag: string, v: string | undefined, dflt: number): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new ConfigError(`--${flag}: expected a positive whole number`);
  return n;
};

export function formatSummary(s: PushSummary, cache: string, dryRun: boolean): string {
  const present = s.closure - s.missing.length;
  if (dryRun) return `${s.missing.length} of ${s.closure} paths missing from cache ${cache}:\n${s.missing.map((p) => `  ${p}\n`).join('')}`;
  const failed = s.failed.length ? `; ${s.failed.length} failed` : '';
  return `pushed ${s.pushed} paths (${formatBytes(s.bytes)}) to cache ${cache} in ${s.seconds.toFixed(1)} s; ${present} of ${s.closure} already there${failed}\n`;
}

export async function pushCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, true);
  if (!positionals.length) throw new ConfigError(PUSH_USAGE);
  const cache = values.cache ?? DEFAULT_CACHE_NAME;
  if (!isCacheName(cache)) throw new ConfigError(`--cache: "${cache}" is not a cache name`);
  const edgeUrl = values['edge-url'] ?? env.ERIS_URL;
  if (!edgeUrl) throw new ConfigError(`eris push: give --edge-url URL or set ERIS_URL\n${PUSH_USAGE}`);
  let url: URL;
  try {
    url = new URL(edgeUrl);
  } catch {
    throw new ConfigError(`--edge-url: ${edgeUrl} is not a URL`);
  }
  if (values.oidc && values.netrc !== undefined) throw new ConfigError('--oidc and --netrc: choose one');
  if (values['oidc-audience'] !== undefined && !values.oidc) throw new ConfigError('--oidc-audience goes with --oidc');
  const pin = pinOptions(values.pin, values['keep-revisions'], positionals);
  const authorization = values.oidc ? await oidcAuthorization(edgeUrl, values['oidc-audience'], env) : pushAuthorization(url.hostname, values.netrc, env);
  const retryForMs = 1000 * positiveInt('retry-seconds', values['retry-seconds'], 600);
  const progress = createProgress(process.stderr);
  const edge = createEdgeClient({ url: edgeUrl.replace(/\/+$/, ''), authorization, retryForMs, onRetry: (what, reason, ms) => progress.retry(what, reason, ms) });
  const summary = await runPush({
    edge,
    cache,
    source: { store: values.store, env },
    paths: positionals,
    jobs: positiveInt('jobs', values.jobs, 4),
    partSize: positiveInt('part-size', values['part-size'], DEFAULT_PART_BYTES),
    // 0 is allowed: no batches.
    batchPaths: values['batch-paths'] === '0' ? 0 : positiveInt('batch-paths', values['batch-paths'], DEFAULT_BATCH_PATHS),
    retryForMs,
    progress,
    dryRun: values['dry-run'],
  });
  if (values.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else (values['dry-run'] ? process.stdout : process.stderr).write(formatSummary(summary, cache, values['dry-run'] === true));
  if (summary.failed.length) throw new Error(`${summary.failed.length} of ${summary.missing.length} paths failed: first ${summary.failed[0]!.error}`);
  if (pin && !values['dry-run']) process.stderr.write(await pinAfterPush(edge, cache, pin));
}
