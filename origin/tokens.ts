/**
 * `eris token …`: tokens are random, shown once, and stored at the edge only as
 * the SHA-256 of the token, in the Worker's TOKENS KV namespace — written
 * through wrangler (local state for `wrangler dev`, or `--remote`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const PROJECT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const WRANGLER = join(PROJECT_DIR, 'node_modules/.bin/wrangler');
export const TOKEN_PREFIX = 'token:';

export function newToken(): string {
  return 'eris_' + randomBytes(32).toString('base64url');
}

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface TokenRecord {
  user: string;
  scopes: string[];
  created: string;
  expires: string | null;
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

export function wranglerKv(target: KvTarget, args: string[]): string {
  const full = ['kv', ...args, '--binding', 'TOKENS', '--config', target.config ?? join(PROJECT_DIR, 'wrangler.toml')];
  if (target.mode === 'remote') full.push('--remote');
  else {
    full.push('--local');
    if (target.persistTo) full.push('--persist-to', target.persistTo);
  }
  const r = spawnSync(WRANGLER, full, { encoding: 'utf8', env: wranglerEnv() });
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout || String(r.error)).trim().split('\n').filter(Boolean).slice(-3).join(' ');
    throw new Error(`wrangler kv ${args[0]} ${args[1]} failed: ${why}`);
  }
  return r.stdout;
}

const USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;

export function addToken(target: KvTarget, user: string, opts: { scopes?: string[]; expiresDays?: number; token?: string } = {}): string {
  if (!USER_RE.test(user)) throw new Error('user names are 1-64 characters of letters, digits, . _ @ -');
  const scopes = opts.scopes ?? ['read'];
  for (const s of scopes) if (s !== 'read' && s !== 'write') throw new Error(`unknown scope ${JSON.stringify(s)} (read, write)`);
  const token = opts.token ?? newToken();
  const record: TokenRecord = {
    user,
    scopes,
    created: new Date().toISOString(),
    expires: opts.expiresDays ? new Date(Date.now() + opts.expiresDays * 86_400_000).toISOString() : null,
  };
  wranglerKv(target, ['key', 'put', TOKEN_PREFIX + tokenDigest(token), JSON.stringify(record)]);
  return token;
}
