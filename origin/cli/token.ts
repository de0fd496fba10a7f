/** `eris token add|list|revoke`: the edge's tokens in its TOKENS KV namespace (tokens/cli.ts). */
import { join } from 'node:path';
import { ConfigError } from '../config/validate.ts';
import { addToken, formatTokenTable, listTokens, PROJECT_DIR, revokeTokens, type KvTarget } from '../tokens/cli.ts';
import { formatTrustRules, readTrustRules } from '../tokens/oidc-rules.ts';
import { OidcTrustError } from '../../shared/oidc-trust.ts';
import { parseCommandArgs, type CliIo } from './args.ts';

export const TOKEN_USAGE = `usage:
  eris token add USER [--scope read|write|admin]... [--cache NAME]... [--expires-days N]
                                                                   prints the new token once; without --cache: the default cache only
  eris token list [--json]                                         user, scopes, dates, id; never the token
  eris token revoke ID | --user USER                               ID: a prefix of an id from list
where to: [--persist-to DIR] (local wrangler dev state, the default) | --remote (the deployed namespace) [--wrangler-config FILE]`;

const OPTIONS = {
  scope: { type: 'string', multiple: true },
  cache: { type: 'string', multiple: true },
  'expires-days': { type: 'string' },
  user: { type: 'string' },
  json: { type: 'boolean' },
  remote: { type: 'boolean' },
  'persist-to': { type: 'string' },
  'wrangler-config': { type: 'string' },
} as const;

export async function run(argv: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'add' && sub !== 'list' && sub !== 'revoke') throw new ConfigError(TOKEN_USAGE);
  const { values, positionals } = parseCommandArgs(rest, OPTIONS, true);
  const only = (allowed: string[]) => {
    const extra = Object.keys(values).filter((k) => !['remote', 'persist-to', 'wrangler-config', ...allowed].includes(k));
    if (extra.length) throw new ConfigError(`eris token ${sub}: --${extra[0]} does not apply\n${TOKEN_USAGE}`);
  };
  if (values.remote && values['persist-to']) throw new ConfigError('--remote and --persist-to: choose one');
  const target: KvTarget = { mode: values.remote ? 'remote' : 'local', persistTo: values['persist-to'], config: values['wrangler-config'] };

  if (sub === 'add') {
    only(['scope', 'cache', 'expires-days']);
    if (positionals.length !== 1) throw new ConfigError('usage: eris token add USER [--scope read|write|admin]... [--cache NAME]... [--expires-days N]');
    const days = values['expires-days'] === undefined ? undefined : Number(values['expires-days']);
    if (days !== undefined && !(Number.isInteger(days) && days > 0)) throw new ConfigError('--expires-days: expected a positive whole number');
    const t = await addToken(target, positionals[0]!, { scopes: values.scope, caches: values.cache, expiresDays: days });
    io.stderr.write(`token for ${positionals[0]} (shown once; only its SHA-256 is stored):\n`);
    io.stdout.write(t + '\n');
    return;
  }
  if (sub === 'list') {
    only(['json']);
    if (positionals.length) throw new ConfigError('usage: eris token list [--json]');
    // The OIDC trust rules first: a rule the edge would refuse stops here with the edge's message.
    const wranglerToml = values['wrangler-config'] ?? join(PROJECT_DIR, 'wrangler.toml');
    let trust;
    try {
      trust = readTrustRules(wranglerToml);
    } catch (err) {
      if (err instanceof OidcTrustError) throw new ConfigError(err.message);
      throw err;
    }
    const tokens = listTokens(target);
    if (values.json) {
      io.stdout.write(JSON.stringify(tokens.map(({ key: _key, ...t }) => t), null, 2) + '\n');
      return;
    }
    if (!tokens.length) io.stderr.write('no tokens\n');
    else io.stdout.write(formatTokenTable(tokens));
    if (trust) io.stdout.write((tokens.length ? '\n' : '') + formatTrustRules(trust, wranglerToml));
    return;
  }
  only(['user']);
  if (positionals.length > 1 || (positionals.length === 1) === (values.user !== undefined)) {
    throw new ConfigError('usage: eris token revoke ID | --user USER');
  }
  for (const t of revokeTokens(target, { id: positionals[0], user: values.user })) {
    io.stdout.write(`revoked ${t.id} (${t.user}, ${t.scopes.join(',') || 'no scopes'})\n`);
  }
}
