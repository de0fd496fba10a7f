#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * The `eris` command. Each command is a module with `run(argv, io)`; a new one
 * gets a row in COMMANDS. Every failure is one line on stderr and a non-zero exit.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../config/validate.ts';
import { exitCode, processIo, wantsHelp, type Command } from './args.ts';
import * as serve from './serve.ts';
import * as keygen from './keygen.ts';
import * as token from './token.ts';
import * as doctor from './doctor/index.ts';
import * as dev from './dev-stack.ts';
import * as clientConfig from './client-config.ts';
import { publishCommand, publishedCommand, unpublishCommand } from '../caches/cli.ts';
import { usageCommand } from '../usage/cli.ts';
import { pushCommand, PUSH_USAGE } from '../push/cli.ts';
import { gcCommand, GC_SYNOPSIS } from '../retention/cli.ts';
import { pinCommand, pinsCommand, PIN_SYNOPSIS, PINS_SYNOPSIS, unpinCommand, UNPIN_SYNOPSIS } from '../retention/pins-cli.ts';

/** Every `eris` command, by name, in the order `eris --help` lists them. */
export const COMMANDS: Record<string, Command> = {
  serve: {
    synopsis: '  eris serve [--config FILE] [--bind HOST:PORT] [--store-root DIR] [--sign-key FILE]... [--edge-secret-file FILE] [--priority N] [--workers N] [--state-dir DIR] [--push-dir DIR] [--metrics-bind [HOST:]PORT]',
    run: serve.run,
  },
  keygen: { synopsis: '  eris keygen NAME [SECRET_FILE PUBLIC_FILE]', run: keygen.run },
  token: {
    synopsis: `  eris token add USER [--scope read|write|admin]... [--cache NAME]... [--expires-days N] [--remote | --persist-to DIR] [--wrangler-config FILE]
  eris token list [--json] [--remote | --persist-to DIR]
  eris token revoke ID | --user USER [--remote | --persist-to DIR]`,
    help: token.TOKEN_USAGE,
    run: token.run,
  },
  doctor: {
    synopsis: '  eris doctor [--config FILE] [serve\'s flags] [--edge-url URL (--netrc FILE | --token TOKEN [--user USER])] [--timeout SECONDS]',
    run: doctor.run,
  },
  publish: { synopsis: '  eris publish PATH... --cache NAME [--store-root DIR | --config FILE]', run: publishCommand },
  unpublish: { synopsis: '  eris unpublish PATH... --cache NAME [--store-root DIR | --config FILE]', run: unpublishCommand },
  published: { synopsis: '  eris published --cache NAME [--json] [--store-root DIR | --config FILE]', run: publishedCommand },
  gc: { synopsis: GC_SYNOPSIS, run: gcCommand },
  pin: { synopsis: PIN_SYNOPSIS, run: pinCommand },
  unpin: { synopsis: UNPIN_SYNOPSIS, run: unpinCommand },
  pins: { synopsis: PINS_SYNOPSIS, run: pinsCommand },
  'client-config': { synopsis: '  eris client-config --edge-url URL (--token TOKEN | --netrc FILE) [--netrc-path PATH] [--json]', run: clientConfig.run },
  usage: { synopsis: '  eris usage [--state-dir DIR | --config FILE] [--since 7d] [--cache NAME] [--user USER] [--token ID] [--json]', run: usageCommand },
  push: {
    synopsis: '  eris push [--cache NAME] [--edge-url URL] [--netrc FILE | --oidc] [--store STORE] [--jobs N] [--pin NAME [--keep-revisions N]] [--dry-run] [--json] PATH...',
    help: PUSH_USAGE,
    run: (argv, io) => pushCommand(argv, io.env),
  },
  dev: { synopsis: '  eris dev            (what npm start runs: origin + wrangler dev on this machine\'s store)', run: dev.run },
};

const USAGE = 'usage:\n' + Object.values(COMMANDS).map((c) => c.synopsis).join('\n');

/** Runs one `eris` command; failures throw (ConfigError: a usage or configuration problem). */
export async function main(args: readonly string[], io = processIo()): Promise<void> {
  const [cmd, ...argv] = args;
  const command = cmd !== undefined && Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help' || wantsHelp(argv)) {
    io.stdout.write((command?.help ?? USAGE) + '\n');
    return;
  }
  if (!command) throw new ConfigError(`unknown command "${cmd}"\n${USAGE}`);
  await command.run(argv, io);
}

/** The process entry point: one line on stderr and exit 2 (usage, configuration) or 1 (anything else). */
export function runCli(args: readonly string[]): void {
  main(args).catch((err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`eris: ${msg}\n`);
    process.exit(exitCode(err));
  });
}

// Run only when executed (node origin/cli/index.ts, the `eris` bin link), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) runCli(process.argv.slice(2));
