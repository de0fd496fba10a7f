#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * The `eris` command: serve | keygen | token add|list|revoke | doctor | dev.
 * Every failure is one line on stderr and a non-zero exit.
 */
import { parseArgs } from 'node:util';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, type Raw } from '../config/index.ts';
import { startOrigin } from '../server/start.ts';
import { serveCluster } from '../server/cluster.ts';
import { createLogger } from '../server/log.ts';
import { writeKeyPair } from './keygen.ts';
import { addToken, formatTokenTable, listTokens, PROJECT_DIR, revokeTokens, type KvTarget } from '../tokens/cli.ts';
import { formatTrustRules, readTrustRules } from '../tokens/oidc-rules.ts';
import { OidcTrustError } from '../../shared/oidc-trust.ts';
import { join } from 'node:path';
import { runDevStack } from './dev-stack.ts';
import { formatChecks, runDoctor } from './doctor/index.ts';
import { publishCommand, publishedCommand, unpublishCommand } from '../caches/cli.ts';
import { usageCommand } from '../usage/cli.ts';
import { pushCommand } from '../push/cli.ts';
import { clientConfigCommand } from './client-config.ts';

const USAGE = `usage:
  eris serve [--config FILE] [--bind HOST:PORT] [--store-root DIR] [--sign-key FILE]... [--edge-secret-file FILE] [--priority N] [--workers N] [--state-dir DIR] [--push-dir DIR] [--metrics-bind [HOST:]PORT]
  eris keygen NAME [SECRET_FILE PUBLIC_FILE]
  eris token add USER [--scope read|write|admin]... [--cache NAME]... [--expires-days N] [--remote | --persist-to DIR] [--wrangler-config FILE]
  eris token list [--json] [--remote | --persist-to DIR]
  eris token revoke ID | --user USER [--remote | --persist-to DIR]
  eris doctor [--config FILE] [serve's flags] [--edge-url URL (--netrc FILE | --token TOKEN [--user USER])] [--timeout SECONDS]
  eris publish PATH... --cache NAME [--store-root DIR | --config FILE]
  eris unpublish PATH... --cache NAME [--store-root DIR | --config FILE]
  eris published --cache NAME [--json] [--store-root DIR | --config FILE]
  eris client-config --edge-url URL (--token TOKEN | --netrc FILE) [--netrc-path PATH] [--json]
  eris usage [--state-dir DIR | --config FILE] [--since 7d] [--cache NAME] [--user USER] [--token ID] [--json]
  eris push [--cache NAME] [--edge-url URL] [--netrc FILE] [--store STORE] [--jobs N] [--dry-run] [--json] PATH...
  eris dev            (what npm start runs: origin + wrangler dev on this machine's store)`;

const SERVE_OPTIONS = {
  config: { type: 'string' },
  bind: { type: 'string' },
  'store-root': { type: 'string' },
  'sign-key': { type: 'string', multiple: true },
  'edge-secret-file': { type: 'string' },
  priority: { type: 'string' },
  workers: { type: 'string' },
  'state-dir': { type: 'string' },
  'push-dir': { type: 'string' },
  'metrics-bind': { type: 'string' },
} as const;

/** The config fields serve's flags set (undefined: not given). */
function serveFlags(values: { bind?: string; 'store-root'?: string; 'sign-key'?: string[]; 'edge-secret-file'?: string; priority?: string; workers?: string; 'state-dir'?: string; 'push-dir'?: string; 'metrics-bind'?: string }): Raw {
  return {
    bind: values.bind,
    storeRoot: values['store-root'],
    signKeyPaths: values['sign-key'],
    edgeSecretFile: values['edge-secret-file'],
    priority: values.priority,
    workers: values.workers,
    stateDir: values['state-dir'],
    pushDir: values['push-dir'],
    metricsBind: values['metrics-bind'],
  };
}

/** `--help` / `-h` anywhere among a command's arguments. */
const wantsHelp = (argv: readonly string[]) => argv.includes('--help') || argv.includes('-h');

export async function serve(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: SERVE_OPTIONS,
    strict: true,
  });
  const config = loadConfig({ configFile: values.config, flags: serveFlags(values), env: process.env });
  if (config.workers > 1) return serveCluster(config, createLogger());
  const origin = await startOrigin(config);
  const stop = () => void origin.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

export function keygen(argv: string[]) {
  const [name, sec, pub, ...rest] = argv;
  if (!name || rest.length || (sec && !pub)) throw new ConfigError('usage: eris keygen NAME [SECRET_FILE PUBLIC_FILE]');
  const publicKey = writeKeyPair(name, sec ?? `${name}.sec`, pub ?? `${name}.pub`);
  process.stdout.write(`wrote ${sec ?? `${name}.sec`} and ${pub ?? `${name}.pub`}\npublic key: ${publicKey}\n`);
}

const TOKEN_USAGE = `usage:
  eris token add USER [--scope read|write|admin]... [--cache NAME]... [--expires-days N]
                                                                   prints the new token once; without --cache: the default cache only
  eris token list [--json]                                         user, scopes, dates, id; never the token
  eris token revoke ID | --user USER                               ID: a prefix of an id from list
where to: [--persist-to DIR] (local wrangler dev state, the default) | --remote (the deployed namespace) [--wrangler-config FILE]`;

export async function token(argv: string[]) {
  const [sub, ...rest] = argv;
  if (sub !== 'add' && sub !== 'list' && sub !== 'revoke') throw new ConfigError(TOKEN_USAGE);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      scope: { type: 'string', multiple: true },
      cache: { type: 'string', multiple: true },
      'expires-days': { type: 'string' },
      user: { type: 'string' },
      json: { type: 'boolean' },
      remote: { type: 'boolean' },
      'persist-to': { type: 'string' },
      'wrangler-config': { type: 'string' },
    },
  });
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
    process.stderr.write(`token for ${positionals[0]} (shown once; only its SHA-256 is stored):\n`);
    process.stdout.write(t + '\n');
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
      process.stdout.write(JSON.stringify(tokens.map(({ key: _key, ...t }) => t), null, 2) + '\n');
      return;
    }
    if (!tokens.length) process.stderr.write('no tokens\n');
    else process.stdout.write(formatTokenTable(tokens));
    if (trust) process.stdout.write((tokens.length ? '\n' : '') + formatTrustRules(trust, wranglerToml));
    return;
  }
  only(['user']);
  if (positionals.length > 1 || (positionals.length === 1) === (values.user !== undefined)) {
    throw new ConfigError('usage: eris token revoke ID | --user USER');
  }
  for (const t of revokeTokens(target, { id: positionals[0], user: values.user })) {
    process.stdout.write(`revoked ${t.id} (${t.user}, ${t.scopes.join(',') || 'no scopes'})\n`);
  }
}

export async function doctor(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...SERVE_OPTIONS,
      'edge-url': { type: 'string' },
      token: { type: 'string' },
      user: { type: 'string' },
      netrc: { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const creds = (values.token !== undefined ? 1 : 0) + (values.netrc !== undefined ? 1 : 0);
  if (values['edge-url'] !== undefined && creds !== 1) throw new ConfigError('doctor: --edge-url needs --netrc FILE or --token TOKEN (one of them)');
  if (values['edge-url'] === undefined && (creds || values.user !== undefined)) throw new ConfigError('doctor: --netrc, --token and --user go with --edge-url URL');
  if (values.user !== undefined && values.token === undefined) throw new ConfigError('doctor: --user goes with --token');
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout) * 1000;
  if (timeout !== undefined && !(timeout > 0)) throw new ConfigError('doctor: --timeout: expected a number of seconds');
  const checks = await runDoctor({
    configFile: values.config,
    flags: serveFlags(values),
    env: process.env,
    edgeUrl: values['edge-url'],
    token: values.token,
    user: values.user,
    netrcFile: values.netrc,
    timeoutMs: timeout,
  });
  process.stdout.write(formatChecks(checks));
  const failed = checks.filter((c) => c.status === 'FAIL').length;
  process.stdout.write(failed ? `${failed} problem${failed > 1 ? 's' : ''} found\n` : 'no problems found\n');
  if (failed) process.exitCode = 1;
}

/** Every `eris` command, by name. */
export const COMMANDS: Record<string, (argv: string[]) => unknown> = {
  serve,
  keygen,
  token,
  doctor,
  publish: publishCommand,
  unpublish: unpublishCommand,
  published: publishedCommand,
  'client-config': clientConfigCommand,
  usage: usageCommand,
  push: pushCommand,
  dev: () => runDevStack(process.env),
};

/** Runs one `eris` command; failures throw (ConfigError: a usage or configuration problem). */
export async function main(args: readonly string[]): Promise<void> {
  const [cmd, ...argv] = args;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help' || wantsHelp(argv)) {
    process.stdout.write((cmd === 'token' ? TOKEN_USAGE : USAGE) + '\n');
    return;
  }
  const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!command) throw new ConfigError(`unknown command "${cmd}"\n${USAGE}`);
  await command(argv);
}

/** The process entry point: one line on stderr and exit 2 (usage, configuration) or 1 (anything else). */
export function runCli(args: readonly string[]): void {
  main(args).catch((err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`eris: ${msg}\n`);
    process.exit(err instanceof ConfigError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 2 : 1);
  });
}

// Run only when executed (node origin/cli/index.ts, the `eris` bin link), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) runCli(process.argv.slice(2));
