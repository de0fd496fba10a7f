/** `eris serve`: the origin, from a config file, flags and the environment. */
import { loadConfig } from '../config/index.ts';
import { CONFIG_FLAGS, configFromFlags } from '../config/flags.ts';
import { startOrigin } from '../server/start.ts';
import { serveCluster } from '../server/cluster.ts';
import { createLogger } from '../server/log.ts';
import { parseCommandArgs, type CliIo } from './args.ts';

export async function run(argv: string[], io: CliIo): Promise<void> {
  const { values } = parseCommandArgs(argv, CONFIG_FLAGS);
  const config = loadConfig({ configFile: values.config, flags: configFromFlags(values), env: io.env });
  if (config.workers > 1) return serveCluster(config, createLogger());
  const origin = await startOrigin(config);
  const stop = () => void origin.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
