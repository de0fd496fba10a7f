/** The one error type of configuration, and the validators every part of the config uses. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A non-empty string, or a ConfigError naming the key. */
export function str(key: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${key}: expected a non-empty string`);
  return v;
}

/** A whole number from min to max (a string of digits counts, as flags and `${VAR}` give strings). */
export function int(key: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${key}: expected a whole number from ${min} to ${max}`);
  }
  return n;
}
