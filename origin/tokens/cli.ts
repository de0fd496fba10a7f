/**
 * `eris token add|list|revoke`: tokens are random, shown once, and stored at the
 * edge only as the SHA-256 of the token, in the Worker's TOKENS KV namespace —
 * written through wrangler (local state for `wrangler dev`, or `--remote`).
 * Each key `token:<digest>` holds the record as its value (what the Worker
 * reads) and again as KV metadata, so `list` is one call. Revoking deletes the
 * key; each Worker isolate keeps a token lookup for TOKEN_CACHE_SECONDS
 * (default 5), so a revoked token is refused within that, plus the time KV
 * takes to drop the key at a location (on Cloudflare up to about a minute).
 */
import { randomBytes } from 'node:crypto';
import { formatColumns } from '../cli/columns.ts';
import { cacheNameProblem } from '../../shared/caches.ts';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseTokenRecord, TOKEN_KEY_PREFIX, tokenDigest, tokenExpired, tokenKey, TOKEN_SCOPES, type TokenRecord, type TokenScope, TOKEN_ID_LENGTH, tokenId } from '../../shared/contract.ts';

export { tokenDigest };

export const PROJECT_DIR = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const WRANGLER = join(PROJECT_DIR, 'node_modules/.bin/wrangler');

export function newToken(): string {
  return 'eris_' + randomBytes(32).toString('base64url');
}

export interface KvTarget {
  /** `local` writes wrangler dev's state (optionally under persistTo); `remote` the real namespace. */
  mode: 'local' | 'remote';
  persistTo?: string;
  /** wrangler.toml to use; the project's by default. */
  config?: string;
}

export const wranglerEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  WRANGLER_SEND_METRICS: 'false',
  DO_NOT_TRACK: '1',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
});

/** How one wrangler run ended: what wranglerKv needs of spawnSync's answer. */
export interface WranglerRun { status: number | null; stdout: string; stderr: string; error?: Error }

const runWrangler = (args: string[]): WranglerRun =>
  // Run wrangler's script with this Node (>= 22), whatever `node` is first on PATH.
  spawnSync(process.execPath, [WRANGLER, ...args], { encoding: 'utf8', env: wranglerEnv(), maxBuffer: 64 << 20 });

/**
 * `wrangler kv --local` starts a workerd of its own on the state a running
 * `wrangler dev` has open; now and then that workerd answers "internal error"
 * (seen in CI beside `npm start`'s wrangler dev), and the same command
 * succeeds when run again. Such a failure is tried again, up to LOCAL_TRIES
 * runs; any other failure, and every `--remote` one, is reported at once.
 */
export const LOCAL_TRIES = 3;
const TRANSIENT_LOCAL = /\binternal error\b|SQLITE_BUSY|database is locked/i;

export function wranglerKv(target: KvTarget, args: string[], run: (args: string[]) => WranglerRun = runWrangler): string {
  const full = ['kv', ...args, '--binding', 'TOKENS', '--config', target.config ?? join(PROJECT_DIR, 'wrangler.toml')];
  if (target.mode === 'remote') full.push('--remote');
  else {
    full.push('--local');
    if (target.persistTo) full.push('--persist-to', target.persistTo);
  }
  for (let attempt = 1; ; attempt++) {
    const r = run(full);
    if (r.status === 0) return r.stdout;
    const why = (r.stderr || r.stdout || String(r.error)).trim().split('\n').filter(Boolean).slice(-3).join(' ');
    if (target.mode === 'local' && attempt < LOCAL_TRIES && TRANSIENT_LOCAL.test(why)) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500 * attempt);
      continue;
    }
    throw new Error(`wrangler kv ${args[0]} ${args[1]} failed: ${why}`);
  }
}

const USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;

export interface AddTokenOptions {
  scopes?: string[];
  expiresDays?: number;
  /** An exact expiry (ISO date), e.g. one in the past for tests; wins over expiresDays. */
  expires?: string;
  /** Store this token instead of a new one (npm start reuses the dev token). */
  token?: string;
  /** Caches the token may use; absent: the default cache only. */
  caches?: string[];
}

/** A new token and the KV entry that stores it: what `addToken` writes, without writing it. */
export async function tokenEntry(user: string, opts: AddTokenOptions = {}): Promise<{ token: string; key: string; record: TokenRecord }> {
  if (!USER_RE.test(user)) throw new Error('user names are 1-64 characters of letters, digits, . _ @ -');
  const scopes = [...new Set(opts.scopes ?? ['read'])];
  for (const s of scopes) if (!TOKEN_SCOPES.includes(s as TokenScope)) throw new Error(`unknown scope ${JSON.stringify(s)} (${TOKEN_SCOPES.join(', ')})`);
  if (opts.expires !== undefined && Number.isNaN(Date.parse(opts.expires))) throw new Error(`expires: not a date: ${JSON.stringify(opts.expires)}`);
  for (const c of opts.caches ?? []) {
    const problem = cacheNameProblem(c);
    if (problem) throw new Error(`--cache ${c}: ${problem}`);
  }
  const token = opts.token ?? newToken();
  const record: TokenRecord = {
    user,
    scopes: scopes as TokenScope[],
    created: new Date().toISOString(),
    expires: opts.expires !== undefined
      ? new Date(opts.expires).toISOString()
      : opts.expiresDays ? new Date(Date.now() + opts.expiresDays * 86_400_000).toISOString() : null,
  };
  if (opts.caches?.length) record.caches = [...new Set(opts.caches)];
  return { token, key: tokenKey(await tokenDigest(token)), record };
}

/** Stores a new token (or opts.token) for `user`; returns the token, which is shown once and kept nowhere. */
export async function addToken(target: KvTarget, user: string, opts: AddTokenOptions = {}): Promise<string> {
  const { token, key, record } = await tokenEntry(user, opts);
  const json = JSON.stringify(record);
  wranglerKv(target, ['key', 'put', key, json, '--metadata', json]);
  return token;
}

/** A stored token as `list` shows it: never the token, only the first characters of its digest. */
export interface ListedToken extends TokenRecord {
  /** First 12 hex characters of the digest: what `revoke` takes. */
  id: string;
  /** The KV key, `token:<sha256 hex>`. */
  key: string;
  expired: boolean;
}

/** As the edge's logs and the origin's usage name tokens (shared/contract.ts tokenId). */
export const ID_LENGTH = TOKEN_ID_LENGTH;

/** wrangler prints a JSON array, possibly after a banner. */
function parseKeyList(out: string): { name: string; metadata?: unknown }[] {
  const start = out.search(/^\[/m);
  if (start < 0) throw new Error(`wrangler kv key list: unexpected output: ${out.trim().split('\n')[0] ?? ''}`);
  const list = JSON.parse(out.slice(start)) as unknown;
  if (!Array.isArray(list)) throw new Error('wrangler kv key list: expected a JSON array');
  return list.filter((e): e is { name: string; metadata?: unknown } => typeof e === 'object' && e !== null && typeof e.name === 'string');
}

/**
 * Every token in the namespace, oldest first. One `wrangler kv key list`;
 * keys written without metadata (older versions of eris) cost one `kv key get` each.
 */
export function listTokens(target: KvTarget, now = Date.now()): ListedToken[] {
  const out: ListedToken[] = [];
  for (const { name, metadata } of parseKeyList(wranglerKv(target, ['key', 'list', '--prefix', TOKEN_KEY_PREFIX]))) {
    const digest = name.slice(TOKEN_KEY_PREFIX.length);
    const record: TokenRecord = parseTokenRecord(metadata) ?? parseTokenRecord(wranglerKv(target, ['key', 'get', name]).trim()) ??
      { user: '?', scopes: [], created: '', expires: null };
    out.push({ ...record, id: tokenId(digest), key: name, expired: tokenExpired(record, now) });
  }
  return out.sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id));
}

/** Which tokens `revoke` removes: by id prefix (exactly one must match) or every token of a user. */
export function selectForRevoke(tokens: ListedToken[], by: { id?: string; user?: string }): ListedToken[] {
  if ((by.id === undefined) === (by.user === undefined)) throw new Error('revoke takes a token id or --user USER (one of them)');
  if (by.user !== undefined) {
    const mine = tokens.filter((t) => t.user === by.user);
    if (!mine.length) throw new Error(`no tokens for user ${JSON.stringify(by.user)}`);
    return mine;
  }
  const id = by.id!.toLowerCase();
  if (!/^[0-9a-f]{4,64}$/.test(id)) throw new Error('a token id is 4 to 64 hex characters (as `eris token list` shows them)');
  const hits = tokens.filter((t) => t.key.slice(TOKEN_KEY_PREFIX.length).startsWith(id));
  if (!hits.length) throw new Error(`no token with id ${id}`);
  if (hits.length > 1) throw new Error(`id ${id} is ambiguous: it matches ${hits.map((t) => `${t.id} (${t.user})`).join(', ')}; give more characters`);
  return hits;
}

/** Deletes the selected tokens from KV; returns what was revoked. */
export function revokeTokens(target: KvTarget, by: { id?: string; user?: string }): ListedToken[] {
  const chosen = selectForRevoke(listTokens(target), by);
  for (const t of chosen) wranglerKv(target, ['key', 'delete', t.key]);
  return chosen;
}

const isoSeconds = (iso: string | null) => (iso ? iso.replace(/\.\d+Z$/, 'Z') : '');

/** The table `eris token list` prints. */
export function formatTokenTable(tokens: ListedToken[]): string {
  const rows = [['ID', 'USER', 'SCOPES', 'CACHES', 'CREATED', 'EXPIRES']];
  for (const t of tokens) {
    // No list: the default cache only.
    rows.push([t.id, t.user, t.scopes.join(',') || '-', t.caches?.join(',') || '(default)', isoSeconds(t.created) || '?', t.expires ? isoSeconds(t.expires) + (t.expired ? ' (expired)' : '') : 'never']);
  }
  return formatColumns(rows);
}
