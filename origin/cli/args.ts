/**
 * What every `eris` command shares: the shape of a command, strict argument
 * parsing (node:util parseArgs), `--help`, and the exit code of a failure.
 * A command's own usage line lives in the COMMANDS table (cli/index.ts).
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { ConfigError } from '../config/validate.ts';

/** Where a command writes and what it reads from its environment. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/** The process's own streams and environment. */
export const processIo = (): CliIo => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });

/** One `eris` command: its arguments after the command name; failures throw (ConfigError: exit 2). */
export type CommandRun = (argv: string[], io: CliIo) => unknown;

export interface Command {
  /** Its line(s) in `eris --help`, indented two spaces. */
  synopsis: string;
  /** What `eris CMD --help` prints; absent: the whole `eris` usage. */
  help?: string;
  run: CommandRun;
}

/**
 * `argv` parsed strictly against `options`. Any parse error (an unknown flag, a
 * flag without its value, an argument where none is taken) is a ConfigError of
 * one line, so the command exits 2 like any other usage problem.
 */
export function parseCommandArgs<const O extends ParseArgsOptionsConfig, const P extends boolean = false>(
  argv: string[],
  options: O,
  allowPositionals?: P,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: P }>> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: (allowPositionals ?? false) as P });
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS_')) throw new ConfigError((e as Error).message.split('\n')[0]!);
    throw e;
  }
}

/** `--help` / `-h` anywhere among a command's arguments. */
export const wantsHelp = (argv: readonly string[]) => argv.includes('--help') || argv.includes('-h');

/** 2 for a usage or configuration problem, 1 for anything else. */
export const exitCode = (err: unknown): 1 | 2 => (err instanceof ConfigError ? 2 : 1);
