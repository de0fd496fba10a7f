import type { Context } from 'hono';
import type { OriginEnv } from '../types.ts';
import { send, TEXT } from '../respond.ts';

/** The public key line(s), one per signing key, for `trusted-public-keys`. */
export function getPublicKey(c: Context<OriginEnv>) {
  const keys = c.get('deps').signers.map((s) => s.publicKey);
  return send(c, 200, keys.join('\n') + '\n', TEXT);
}
