#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * The `eris` command. Each command is a module with `run(argv, io)`; a new one
 * gets a row in COMMANDS. Every failure is one line on stderr and a non-zero exit.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dispatch, load, runProcess, type CommandTable } from './dispatch.ts';
import type { CliIo, Command } from './args.ts';
import { TOKEN_USAGE } from './token.ts';
import { CLIENT_CONFIG_COMMAND, PUSH_COMMAND } from './client-commands.ts';
import { GC_SYNOPSIS, PIN_SYNOPSIS, PINS_SYNOPSIS, UNPIN_SYNOPSIS } from '../retention/synopses.ts';

/** Every `eris` command, by name, in the order `eris --help` lists them. */
export const COMMANDS: Record<string, Command> = {
  serve: {
    synopsis: '  eris serve [--config FILE] [--bind HOST:PORT] [--store-root DIR] [--sign-key FILE]... [--edge-secret-file FILE] [--priority N] [--workers N] [--state-dir DIR] [--push-dir DIR] [--metrics-bind [HOST:]PORT]',
    run: load(async () => (await import('./serve.ts')).run),
  },
  keygen: { synopsis: '  eris keygen NAME [SECRET_FILE PUBLIC_FILE]', run: load(async () => (await import('./keygen.ts')).run) },
  token: {
    synopsis: `  eris token add USER [--scope read|write|admin]... [--cache NAME]... [--expires-days N] [--remote | --persist-to DIR] [--wrangler-config FILE]
  eris token list [--json] [--remote | --persist-to DIR]
  eris token revoke ID | --user USER [--remote | --persist-to DIR]`,
    help: TOKEN_USAGE,
    run: load(async () => (await import('./token.ts')).run),
  },
  doctor: {
    synopsis: '  eris doctor [--config FILE] [serve\'s flags] [--edge-url URL (--netrc FILE | --token TOKEN [--user USER])] [--timeout SECONDS]',
    run: load(async () => (await import('./doctor/index.ts')).run),
  },
  publish: { synopsis: '  eris publish PATH... --cache NAME [--store-root DIR | --config FILE]', run: load(async () => (await import('../caches/cli.ts')).publishCommand) },
  unpublish: { synopsis: '  eris unpublish PATH... --cache NAME [--store-root DIR | --config FILE]', run: load(async () => (await import('../caches/cli.ts')).unpublishCommand) },
  published: { synopsis: '  eris published --cache NAME [--json] [--store-root DIR | --config FILE]', run: load(async () => (await import('../caches/cli.ts')).publishedCommand) },
  gc: { synopsis: GC_SYNOPSIS, run: load(async () => (await import('../retention/cli.ts')).gcCommand) },
  pin: { synopsis: PIN_SYNOPSIS, run: load(async () => (await import('../retention/pins-cli.ts')).pinCommand) },
  unpin: { synopsis: UNPIN_SYNOPSIS, run: load(async () => (await import('../retention/pins-cli.ts')).unpinCommand) },
  pins: { synopsis: PINS_SYNOPSIS, run: load(async () => (await import('../retention/pins-cli.ts')).pinsCommand) },
  'client-config': CLIENT_CONFIG_COMMAND,
  usage: { synopsis: '  eris usage [--state-dir DIR | --config FILE] [--since 7d] [--cache NAME] [--user USER] [--token ID] [--json]', run: load(async () => (await import('../usage/cli.ts')).usageCommand) },
  push: PUSH_COMMAND,
  dev: { synopsis: '  eris dev            (what npm start runs: origin + wrangler dev on this machine\'s store)', run: load(async () => (await import('./dev-stack.ts')).run) },
};

const ERIS: CommandTable = { commands: COMMANDS };

/** Runs one `eris` command; failures throw (ConfigError: a usage or configuration problem). */
export const main = (args: readonly string[], io?: CliIo): Promise<void> => dispatch(ERIS, args, io);

/** The process entry point: one line on stderr and exit 2 (usage, configuration) or 1 (anything else). */
export const runCli = (args: readonly string[]): void => runProcess(ERIS, args);

// Run only when executed (node origin/cli/index.ts, the `eris` bin link), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) runCli(process.argv.slice(2));
