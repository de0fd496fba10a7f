#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * The `eris` command. Each command is a module with `run(argv, io)`; a new one
 * gets a row in COMMANDS. Every failure is one line on stderr and a non-zero exit.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../config/validate.ts';
import { exitCode, processIo, wantsHelp, type Command, type CommandRun } from './args.ts';
import { TOKEN_USAGE } from './token.ts';
import { PUSH_USAGE } from '../push/cli.ts';
import { GC_SYNOPSIS, PIN_SYNOPSIS, PINS_SYNOPSIS, UNPIN_SYNOPSIS } from '../retention/synopses.ts';

/**
 * A command's code, loaded when it runs: `eris push` (a CI runner, a post-build hook after every build)
 * loads the push client, not the server, retention and the rest (with Node stripping TypeScript as it
 * loads, every module is start-up time).
 */
const load = (get: () => Promise<CommandRun>): CommandRun => async (argv, io) => (await get())(argv, io);

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
  'client-config': { synopsis: '  eris client-config --edge-url URL (--token TOKEN | --netrc FILE) [--netrc-path PATH] [--json]', run: load(async () => (await import('./client-config.ts')).run) },
  usage: { synopsis: '  eris usage [--state-dir DIR | --config FILE] [--since 7d] [--cache NAME] [--user USER] [--token ID] [--json]', run: load(async () => (await import('../usage/cli.ts')).usageCommand) },
  push: {
    synopsis: '  eris push [--cache NAME] [--edge-url URL] [--netrc FILE | --oidc] [--store STORE] [--jobs N] [--pin NAME [--keep-revisions N]] [--dry-run] [--json] PATH...',
    help: PUSH_USAGE,
    run: load(async () => { const { pushCommand } = await import('../push/cli.ts'); return (argv, io) => pushCommand(argv, io.env); }),
  },
  dev: { synopsis: '  eris dev            (what npm start runs: origin + wrangler dev on this machine\'s store)', run: load(async () => (await import('./dev-stack.ts')).run) },
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
