/** One JSON line per event on stdout/stderr; cheap enough for the hot path. */
export interface Logger {
  info(event: Record<string, unknown>): void;
  warn(event: Record<string, unknown>): void;
  error(event: Record<string, unknown>): void;
}

export function createLogger(out: (line: string) => void = (l) => process.stdout.write(l + '\n'),
  err: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const line = (level: string, e: Record<string, unknown>) => JSON.stringify({ t: new Date().toISOString(), level, ...e });
  return {
    info: (e) => out(line('info', e)),
    warn: (e) => err(line('warn', e)),
    error: (e) => err(line('error', e)),
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
