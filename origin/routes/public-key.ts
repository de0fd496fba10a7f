import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';

/** The public key line(s), one per signing key, for `trusted-public-keys`. */
export function getPublicKey(c: Context<OriginEnv>) {
  const keys = c.get('deps').signers.map((s) => s.publicKey);
  return c.body(keys.join('\n') + '\n', 200, { 'Content-Type': 'text/plain; charset=utf-8' });
}
