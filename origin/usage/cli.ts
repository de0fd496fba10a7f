/** `eris usage [--state-dir DIR | --config FILE] [--since 7d] [--cache NAME] [--user U] [--json]`. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ConfigError, interpolate } from '../config/index.ts';
import { parseCommandArgs } from '../cli/args.ts';
import { UsageDb, USAGE_FILE } from './db.ts';
import { formatUsage, usageReport } from './report.ts';

export const USAGE_USAGE = 'usage: eris usage [--state-dir DIR | --config FILE] [--since 7d|YYYY-MM-DD] [--cache NAME] [--user USER] [--token ID] [--json]';

/** Only the config's state_dir: the rest (secrets from the service's environment) need not be readable here. */
function stateDirOf(configFile: string): string {
  let data: Record<string, unknown>;
  try {
    const text = readFileSync(configFile, 'utf8');
    data = configFile.endsWith('.json') ? JSON.parse(text) : parseToml(text);
  } catch (e) {
    throw new ConfigError(`${configFile}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof data.state_dir !== 'string' || !data.state_dir) throw new ConfigError(`${configFile}: no state_dir, so the origin records no usage`);
  return interpolate(data.state_dir, process.env, 'state_dir');
}

const OPTIONS = {
  'state-dir': { type: 'string' },
  config: { type: 'string' },
  since: { type: 'string', default: '7d' },
  cache: { type: 'string' },
  user: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export function usageCommand(argv: string[]): void {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, true);
  if (positionals.length || (values['state-dir'] !== undefined) === (values.config !== undefined)) throw new ConfigError(USAGE_USAGE);
  if (values.token !== undefined && !/^[0-9a-f]{12}$/.test(values.token)) throw new ConfigError(`--token: expected a token id, 12 hex digits as \`eris token list\` shows them (never the token itself)`);
  const dir = values['state-dir'] ?? stateDirOf(values.config!);
  if (!existsSync(join(dir, USAGE_FILE))) throw new ConfigError(`no ${USAGE_FILE} in ${dir}: the origin has recorded no usage there yet (is state_dir set?)`);
  const db = UsageDb.open(dir, { readOnly: true });
  try {
    let report;
    try {
      report = usageReport(db, { since: values.since, cache: values.cache, user: values.user, token: values.token });
    } catch (e) {
      if ((e as Error).message.startsWith('--since')) throw new ConfigError((e as Error).message);
      throw e;
    }
    process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatUsage(report));
  } finally {
    db.close();
  }
}
