/**
 * Running one command of a table as a process: `--help`, an unknown command, and a failure as one line on
 * stderr with exit 2 (usage, configuration) or 1. The full `eris` (cli/index.ts) and the packed client
 * (cli/packed.ts, `npm run build:cli`) are each a table run through here.
 */
import { ConfigError } from '../config/validate.ts';
import { exitCode, processIo, wantsHelp, type Command, type CommandRun } from './args.ts';

export interface CommandTable {
  /** Every command, by name, in the order `--help` lists them. */
  commands: Record<string, Command>;
  /** What an unknown command adds after its one line (default: the usage). */
  unknown?: (cmd: string) => string;
}

/**
 * A command's code, loaded when it runs: `eris push` (a CI runner, a post-build hook after every build)
 * loads the push client, not the server, retention and the rest (with Node stripping TypeScript as it
 * loads, every module is start-up time).
 */
export const load = (get: () => Promise<CommandRun>): CommandRun => async (argv, io) => (await get())(argv, io);

/** The usage of a table: every command's synopsis. */
export const usageOf = (table: CommandTable) => 'usage:\n' + Object.values(table.commands).map((c) => c.synopsis).join('\n');

/** Runs one command of `table`; failures throw (ConfigError: a usage or configuration problem). */
export async function dispatch(table: CommandTable, args: readonly string[], io = processIo()): Promise<void> {
  const [cmd, ...argv] = args;
  const command = cmd !== undefined && Object.hasOwn(table.commands, cmd) ? table.commands[cmd] : undefined;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help' || wantsHelp(argv)) {
    io.stdout.write((command?.help ?? usageOf(table)) + '\n');
    return;
  }
  if (!command) throw new ConfigError(`unknown command "${cmd}"\n${table.unknown?.(cmd) ?? usageOf(table)}`);
  await command.run(argv, io);
}

/** The process entry point: one line on stderr and exit 2 (usage, configuration) or 1 (anything else). */
export function runProcess(table: CommandTable, args: readonly string[]): void {
  dispatch(table, args).catch((err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`eris: ${msg}\n`);
    process.exit(exitCode(err));
  });
}
