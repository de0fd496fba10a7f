#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * The `eris` command: serve | keygen | token add | dev.
 * Every failure is one line on stderr and a non-zero exit.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { resolveConfig, parseConfigFile, ConfigError } from './config.ts';
import { startOrigin } from './main.ts';
import { writeKeyPair } from './keygen.ts';
import { addToken } from './tokens.ts';
import { runDevStack } from './dev-stack.ts';

const USAGE = `usage:
  eris serve [--config FILE] [--bind HOST:PORT] [--store-root DIR] [--sign-key FILE]... [--edge-secret-file FILE] [--priority N]
  eris keygen NAME [SECRET_FILE PUBLIC_FILE]
  eris token add USER [--scope read|write]... [--expires-days N] [--remote] [--persist-to DIR] [--wrangler-config FILE]
  eris dev            (what npm start runs: origin + wrangler dev on this machine's store)`;

async function serve(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      bind: { type: 'string' },
      'store-root': { type: 'string' },
      'sign-key': { type: 'string', multiple: true },
      'edge-secret-file': { type: 'string' },
      priority: { type: 'string' },
    },
    strict: true,
  });
  let file;
  if (values.config) {
    let text: string;
    try {
      text = readFileSync(values.config, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config ${values.config}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    file = parseConfigFile(text, values.config, process.env);
  }
  const config = resolveConfig({
    file,
    flags: {
      bind: values.bind,
      storeRoot: values['store-root'],
      signKeyPaths: values['sign-key'],
      edgeSecretFile: values['edge-secret-file'],
      priority: values.priority,
    },
    env: process.env,
  });
  const origin = await startOrigin(config);
  const stop = () => void origin.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

function keygen(argv: string[]) {
  const [name, sec, pub, ...rest] = argv;
  if (!name || rest.length || (sec && !pub)) throw new ConfigError('usage: eris keygen NAME [SECRET_FILE PUBLIC_FILE]');
  const publicKey = writeKeyPair(name, sec ?? `${name}.sec`, pub ?? `${name}.pub`);
  process.stdout.write(`wrote ${sec ?? `${name}.sec`} and ${pub ?? `${name}.pub`}\npublic key: ${publicKey}\n`);
}

function token(argv: string[]) {
  const [sub, ...rest] = argv;
  if (sub !== 'add') throw new ConfigError('usage: eris token add USER [--scope read|write] [--expires-days N] [--remote]');
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      scope: { type: 'string', multiple: true },
      'expires-days': { type: 'string' },
      remote: { type: 'boolean' },
      'persist-to': { type: 'string' },
      'wrangler-config': { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new ConfigError('usage: eris token add USER');
  const days = values['expires-days'] === undefined ? undefined : Number(values['expires-days']);
  if (days !== undefined && !(Number.isInteger(days) && days > 0)) throw new ConfigError('--expires-days: expected a positive whole number');
  const t = addToken(
    { mode: values.remote ? 'remote' : 'local', persistTo: values['persist-to'], config: values['wrangler-config'] },
    positionals[0]!,
    { scopes: values.scope, expiresDays: days },
  );
  process.stderr.write(`token for ${positionals[0]} (shown once; only its SHA-256 is stored):\n`);
  process.stdout.write(t + '\n');
}

async function main() {
  const [cmd, ...argv] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(argv);
    case 'keygen':
      return keygen(argv);
    case 'token':
      return token(argv);
    case 'dev':
      return runDevStack(process.env);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      throw new ConfigError(`unknown command "${cmd}"\n${USAGE}`);
  }
}

main().catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`eris: ${msg}\n`);
  process.exit(err instanceof ConfigError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 2 : 1);
});
