/**
 * The commands a CI runner or a laptop uses — in the full `eris` (cli/index.ts) and in the packed client
 * (cli/packed.ts), which is only these.
 */
import type { Command } from './args.ts';
import { load } from './dispatch.ts';
import { PUSH_USAGE } from '../push/cli.ts';

export const PUSH_COMMAND: Command = {
  synopsis: '  eris push [--cache NAME] [--edge-url URL] [--netrc FILE | --oidc] [--store STORE] [--jobs N] [--pin NAME [--keep-revisions N]] [--dry-run] [--json] PATH...',
  help: PUSH_USAGE,
  run: load(async () => { const { pushCommand } = await import('../push/cli.ts'); return (argv, io) => pushCommand(argv, io.env); }),
};

export const CLIENT_CONFIG_COMMAND: Command = {
  synopsis: '  eris client-config --edge-url URL (--token TOKEN | --netrc FILE) [--netrc-path PATH] [--json]',
  run: load(async () => (await import('./client-config.ts')).run),
};
