/**
 * `eris doctor`: checks a deployment the way `eris serve` and Nix clients see
 * it — config, signing keys (valid, pairs match, not readable by everyone),
 * store DB, the running origin (with the edge secret), and optionally the edge
 * with a user's token — and says what is wrong in plain words. It never prints
 * a secret: not the edge secret, not the token, not a secret key.
 */
import { checkCaches, compareServedCaches } from '../../caches/doctor-checks.ts';
import { parseCacheListing } from '../../../shared/cache-listing.ts';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ConfigError, loadConfig, type ConfigSources, type OriginConfig } from '../../config/index.ts';
import { CONFIG_FLAGS, configFromFlags } from '../../config/flags.ts';
import { parseCommandArgs, type CliIo } from '../args.ts';
import { basicAuthorization, netrcLookup } from '../netrc.ts';
import { checkStoreRoot, storeDbPath } from '../../store/store.ts';
import { openStoreDb } from '../../store/db.ts';
import { createSigner } from '../../../shared/signing.ts';
import { checkPush } from '../../push/doctor.ts';
import { checkUsage } from '../../usage/doctor.ts';
import { checkTempRoots } from '../../store/doctor.ts';
import { checkDiskSpace, checkRetention } from '../../retention/doctor.ts';
import { EDGE_SECRET_HEADER, NO_STORE } from '../../../shared/contract.ts';
import { checkEdgeCaches } from './edge-caches.ts';

import type { Check } from './check.ts';

export type { Check };

export interface DoctorOptions {
  configFile?: string;
  /** The same flags `eris serve` takes; they win over the file. */
  flags?: ConfigSources['flags'];
  env: Record<string, string | undefined>;
  /** The Worker's URL, e.g. https://cache.example.org. */
  edgeUrl?: string;
  /** A user's token (sent as Basic with `user`, else as Bearer)… */
  token?: string;
  user?: string;
  /** …or a netrc file holding a line for the edge's host name, as Nix uses it. */
  netrcFile?: string;
  timeoutMs?: number;
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));


/** The public key file that goes with a secret key file: `x.sec` → `x.pub`, else `x.pub` next to `x`. */
export function publicKeyFileFor(secretPath: string): string {
  return secretPath.endsWith('.sec') ? secretPath.slice(0, -4) + '.pub' : secretPath + '.pub';
}

function checkKey(path: string, checks: Check[]): string | undefined {
  const what = `key ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = errCode(e);
    checks.push({
      status: 'FAIL',
      what,
      detail: code === 'ENOENT'
        ? 'the file does not exist (make one with `eris keygen NAME` or `nix-store --generate-binary-cache-key`)'
        : code === 'EACCES'
          ? `cannot be read by this user (uid ${process.getuid?.()}); run doctor as the user the origin runs as`
          : `cannot be read: ${code}`,
    });
    return undefined;
  }
  let publicKey: string;
  try {
    publicKey = createSigner(text).publicKey;
  } catch (e) {
    checks.push({ status: 'FAIL', what, detail: `not a usable Nix secret key: ${(e as Error).message}` });
    return undefined;
  }
  checks.push({ status: 'ok', what, detail: `valid secret key; its public key is ${publicKey}` });

  const mode = statSync(path).mode & 0o777;
  const octal = mode.toString(8).padStart(4, '0');
  if (mode & 0o007) {
    checks.push({
      status: 'FAIL',
      what: `${what} permissions`,
      detail: `mode ${octal}: ${mode & 0o004 ? 'anyone on this machine can read the secret key' : 'other users have access'}; ` +
        `chmod 0600 (owner only), or root:adm 0640 as the original Eris had it`,
    });
  } else {
    checks.push({ status: 'ok', what: `${what} permissions`, detail: `mode ${octal}, not readable by other users` });
  }

  const pubPath = publicKeyFileFor(path);
  if (existsSync(pubPath)) {
    let pub = '';
    try {
      pub = readFileSync(pubPath, 'utf8').trim();
    } catch (e) {
      checks.push({ status: 'FAIL', what: `key pair ${pubPath}`, detail: `cannot be read: ${errCode(e)}` });
      return publicKey;
    }
    checks.push(pub === publicKey
      ? { status: 'ok', what: `key pair ${pubPath}`, detail: 'matches the secret key' }
      : {
          status: 'FAIL',
          what: `key pair ${pubPath}`,
          detail: `does not belong to ${path}: it holds ${JSON.stringify(pub.slice(0, 80))}, the secret key's public half is ${publicKey}; ` +
            'clients trusting the file would reject every signature',
        });
  }
  return publicKey;
}

function checkStore(config: OriginConfig, checks: Check[]) {
  const what = 'store';
  const problem = checkStoreRoot(config.storeRoot, config.storeDir);
  if (problem) {
    checks.push({ status: 'FAIL', what, detail: `${problem} (store_root = ${config.storeRoot})` });
    return;
  }
  const dbPath = storeDbPath(config.storeRoot);
  try {
    const db = openStoreDb(dbPath, config.storeDir, { busyTimeoutMs: config.dbBusyTimeoutMs });
    try {
      const n = db.validPathCount();
      checks.push({ status: 'ok', what, detail: `${dbPath} opens read-only: ${n} valid paths` });
    } finally {
      db.close();
    }
  } catch (e) {
    checks.push({ status: 'FAIL', what, detail: `cannot read ${dbPath}: ${(e as Error).message}` });
  }
}

async function httpGet(url: string, headers: Record<string, string>, timeoutMs: number): Promise<{ res: Response; body: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  return { res, body: await res.text() };
}

function networkError(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if ((e as Error).name === 'TimeoutError') return 'no answer in time';
  return cause?.code ?? cause?.message ?? (e as Error).message;
}

const firstLine = (s: string) => s.trim().split('\n')[0]?.slice(0, 120) ?? '';
const keyLines = (body: string) => body.split('\n').map((l) => l.trim()).filter(Boolean);
const sameKeys = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((k, i) => k === [...b].sort()[i]);

export function originUrlFor(config: OriginConfig): string {
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host === '::' ? '::1' : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
}

async function checkOrigin(config: OriginConfig, keys: string[] | undefined, timeoutMs: number, checks: Check[]) {
  const base = originUrlFor(config);
  const what = 'origin';
  const secret = { [EDGE_SECRET_HEADER]: config.edgeSecret };
  try {
    const { res, body } = await httpGet(`${base}/health`, secret, timeoutMs);
    if (res.status === 403) {
      checks.push({ status: 'FAIL', what, detail: `${base} refused the configured edge secret (403): the running origin has another one; restart it after changing the secret, and give the Worker the same EDGE_SECRET` });
      return;
    }
    if (res.status !== 200) {
      checks.push({ status: 'FAIL', what, detail: `${base}/health answered ${res.status}: ${firstLine(body)}` });
      return;
    }
    checks.push({ status: 'ok', what, detail: `${base} answers /health with the edge secret` });
  } catch (e) {
    checks.push({ status: 'FAIL', what, detail: `nothing answers at ${base} (${networkError(e)}): is \`eris serve\` running with this config?` });
    return;
  }
  if (!keys) return;
  try {
    const { res, body } = await httpGet(`${base}/v1/public-key`, secret, timeoutMs);
    const served = keyLines(body);
    checks.push(res.status === 200 && sameKeys(served, keys)
      ? { status: 'ok', what: 'origin keys', detail: 'the running origin signs with the configured key(s)' }
      : { status: 'FAIL', what: 'origin keys', detail: `the running origin serves ${res.status === 200 ? served.join(' ') || 'no key' : `status ${res.status}`}, the config has ${keys.join(' ')}; restart it after changing keys` });
  } catch (e) {
    checks.push({ status: 'FAIL', what: 'origin keys', detail: `/v1/public-key: ${networkError(e)}` });
  }
}

async function checkServedCaches(config: OriginConfig, keysOf: (paths: string[]) => string[] | undefined, timeoutMs: number, checks: Check[]) {
  try {
    const { res, body } = await httpGet(`${originUrlFor(config)}/v1/caches`, { [EDGE_SECRET_HEADER]: config.edgeSecret }, timeoutMs);
    if (res.status !== 200) return void checks.push({ status: 'FAIL', what: 'origin caches', detail: `/v1/caches answered ${res.status}: ${firstLine(body)} (an older eris?)` });
    compareServedCaches(config, parseCacheListing(body), keysOf, checks);
  } catch (e) {
    checks.push({ status: 'FAIL', what: 'origin caches', detail: `/v1/caches: ${networkError(e)}` });
  }
}

function edgeAuthHeader(o: DoctorOptions, host: string, checks: Check[]): Record<string, string> | null {
  if (o.token) return { Authorization: o.user ? basicAuthorization(o.user, o.token) : `Bearer ${o.token}` };
  let text: string;
  try {
    text = readFileSync(o.netrcFile!, 'utf8');
  } catch (e) {
    checks.push({ status: 'FAIL', what: 'netrc', detail: `cannot read ${o.netrcFile}: ${errCode(e)}` });
    return null;
  }
  const entry = netrcLookup(text, host);
  if (!entry?.password) {
    checks.push({ status: 'FAIL', what: 'netrc', detail: `${o.netrcFile} has no "machine ${host} … password …" line; Nix would send no token` });
    return null;
  }
  return { Authorization: basicAuthorization(entry.login, entry.password) };
}

async function checkEdge(o: DoctorOptions, keys: string[] | undefined, ownKeys: Map<string, string[]> | undefined, timeoutMs: number, checks: Check[]) {
  let base: URL;
  try {
    base = new URL(o.edgeUrl!);
  } catch {
    checks.push({ status: 'FAIL', what: 'edge', detail: `${o.edgeUrl} is not a URL` });
    return;
  }
  const edge = base.origin;
  const auth = edgeAuthHeader(o, base.hostname, checks);
  if (auth) {
    try {
      const { res, body } = await httpGet(`${edge}/nix-cache-info`, auth, timeoutMs);
      const why: Record<number, string> = {
        401: 'the edge refused the token (401): unknown, revoked or expired, or the user name does not match; `eris token list` shows what the edge knows',
        502: 'the edge cannot use the origin (502): check ORIGIN_URL and the tunnel, and that the Worker\'s EDGE_SECRET equals the origin\'s edge secret',
        504: 'the origin did not answer the edge in time (504)',
        500: `the edge failed (500): ${firstLine(body)} — check the Worker's variables and secrets`,
      };
      if (res.status === 200 && /^StoreDir: /m.test(body)) {
        checks.push({ status: 'ok', what: 'edge', detail: `${edge}/nix-cache-info answers with the token (${firstLine(body)})` });
      } else {
        checks.push({ status: 'FAIL', what: 'edge', detail: why[res.status] ?? `${edge}/nix-cache-info answered ${res.status}: ${firstLine(body)}` });
      }
      const cc = res.headers.get('cache-control');
      const cf = res.headers.get('cf-cache-status');
      checks.push(cc === NO_STORE && (!cf || !/^(HIT|STALE|UPDATING|REVALIDATED)$/i.test(cf))
        ? { status: 'ok', what: 'edge caching', detail: `Cache-Control: ${cc}${cf ? `, cf-cache-status: ${cf}` : ''}` }
        : { status: 'FAIL', what: 'edge caching', detail: `Cache-Control: ${cc ?? '(none)'}, cf-cache-status: ${cf ?? '(none)'}; responses must never come from a cache (add a "Bypass cache" Cache Rule for the hostname)` });
    } catch (e) {
      checks.push({ status: 'FAIL', what: 'edge', detail: `cannot reach ${edge} (${networkError(e)})` });
    }
    checks.push(...await checkEdgeCaches(edge, auth, ownKeys, timeoutMs));
  }
  try {
    const { res, body } = await httpGet(`${edge}/v1/public-key`, {}, timeoutMs);
    const served = keyLines(body);
    const others = keys ? served.filter((k) => !keys.includes(k)) : [];
    if (res.status !== 200) checks.push({ status: 'FAIL', what: 'edge public key', detail: `${edge}/v1/public-key answered ${res.status}: ${firstLine(body)}` });
    else if (!keys) checks.push({ status: 'skip', what: 'edge public key', detail: `the edge serves ${served.join(' ')}; not compared, the config did not load` });
    else if (sameKeys(served, keys)) checks.push({ status: 'ok', what: 'edge public key', detail: 'the edge serves the configured public key(s)' });
    // Several origins, each with its own key: the edge lists them all.
    else if (keys.every((k) => served.includes(k))) checks.push({ status: 'ok', what: 'edge public key', detail: `the edge serves the configured public key(s) and ${others.length} of other origins (${others.join(' ')})` });
    else checks.push({ status: 'FAIL', what: 'edge public key', detail: `the edge serves ${served.join(' ') || 'nothing'}, the config has ${keys.join(' ')}: the edge talks to another origin, or the origin runs with other keys` });
  } catch (e) {
    checks.push({ status: 'FAIL', what: 'edge public key', detail: `cannot reach ${edge} (${networkError(e)})` });
  }
}

export async function runDoctor(o: DoctorOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const timeoutMs = o.timeoutMs ?? 10_000;
  let config: OriginConfig | undefined;
  try {
    config = loadConfig({ configFile: o.configFile, flags: o.flags, env: o.env });
    checks.push({
      status: 'ok',
      what: 'config',
      detail: `${o.configFile ?? 'flags and environment'}: bind ${config.host}:${config.port}, store_root ${config.storeRoot}, ` +
        `${new Set(config.caches.flatMap((c) => c.signKeyPaths)).size} signing key(s), ${config.caches.length} cache(s)`,
    });
  } catch (e) {
    checks.push({ status: 'FAIL', what: 'config', detail: e instanceof Error ? e.message : String(e) });
  }
  let keys: string[] | undefined;
  let ownKeys: Map<string, string[]> | undefined;
  if (config) {
    // Every key file once; `keys` are the default cache's (what /v1/public-key serves).
    const publicKeyOf = new Map<string, string | undefined>();
    for (const p of new Set(config.caches.flatMap((c) => c.signKeyPaths))) publicKeyOf.set(p, checkKey(p, checks));
    const keysOf = (paths: string[]) => {
      const found = paths.map((p) => publicKeyOf.get(p));
      return found.every((k): k is string => k !== undefined) ? found : undefined;
    };
    const defaultCache = config.caches.find((c) => c.name === config.defaultCache);
    if (defaultCache) keys = keysOf(defaultCache.signKeyPaths);
    ownKeys = new Map(config.caches.flatMap((c) => {
      const k = keysOf(c.signKeyPaths);
      return k ? [[c.name, k] as const] : [];
    }));
    checkStore(config, checks);
    if (!checks.some((c) => c.what === 'store' && c.status === 'FAIL')) await checkCaches(config, checks);
    // Imports are signed with each cache's first key: the store must trust every one of those.
    checks.push(...checkPush(config, [...new Set(config.caches.flatMap((c) => keysOf(c.signKeyPaths)?.slice(0, 1) ?? []))]));
    checks.push(...checkUsage(config));
    if (!checks.some((c) => c.what === 'store' && c.status === 'FAIL')) checks.push(...checkDiskSpace(config), checkTempRoots(config));
    checks.push(...checkRetention(config));
    await checkOrigin(config, keys, timeoutMs, checks);
    if (checks.some((c) => c.what === 'origin' && c.status === 'ok')) await checkServedCaches(config, keysOf, timeoutMs, checks);
  }
  if (o.edgeUrl) await checkEdge(o, keys, ownKeys, timeoutMs, checks);
  else checks.push({ status: 'skip', what: 'edge', detail: 'not checked; give --edge-url URL with --netrc FILE or --token TOKEN' });
  return checks;
}

export function formatChecks(checks: Check[]): string {
  return checks.map((c) => `${c.status.padEnd(4)} ${c.what}: ${c.detail}\n`).join('');
}

const DOCTOR_OPTIONS = {
  ...CONFIG_FLAGS,
  'edge-url': { type: 'string' },
  token: { type: 'string' },
  user: { type: 'string' },
  netrc: { type: 'string' },
  timeout: { type: 'string' },
} as const;

/** The `eris doctor` command: every check, one line each, and exit 1 when one failed. */
export async function run(argv: string[], io: CliIo): Promise<void> {
  const { values } = parseCommandArgs(argv, DOCTOR_OPTIONS);
  const creds = (values.token !== undefined ? 1 : 0) + (values.netrc !== undefined ? 1 : 0);
  if (values['edge-url'] !== undefined && creds !== 1) throw new ConfigError('doctor: --edge-url needs --netrc FILE or --token TOKEN (one of them)');
  if (values['edge-url'] === undefined && (creds || values.user !== undefined)) throw new ConfigError('doctor: --netrc, --token and --user go with --edge-url URL');
  if (values.user !== undefined && values.token === undefined) throw new ConfigError('doctor: --user goes with --token');
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout) * 1000;
  if (timeout !== undefined && !(timeout > 0)) throw new ConfigError('doctor: --timeout: expected a number of seconds');
  const checks = await runDoctor({
    configFile: values.config,
    flags: configFromFlags(values),
    env: io.env,
    edgeUrl: values['edge-url'],
    token: values.token,
    user: values.user,
    netrcFile: values.netrc,
    timeoutMs: timeout,
  });
  io.stdout.write(formatChecks(checks));
  const failed = checks.filter((c) => c.status === 'FAIL').length;
  io.stdout.write(failed ? `${failed} problem${failed > 1 ? 's' : ''} found\n` : 'no problems found\n');
  if (failed) process.exitCode = 1;
}
