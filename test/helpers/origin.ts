/** An in-process origin on a free port over a given store root, for origin tests. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/signing.ts';
import { startOrigin, type RunningOrigin } from '../../origin/main.ts';
import { silentLogger } from '../../origin/log.ts';
import { resolveConfig } from '../../origin/config.ts';

export const EDGE_SECRET = 'test-edge-secret-0123456789';

export interface TestOrigin extends RunningOrigin {
  publicKey: string;
  keyFile: string;
  get(path: string, init?: RequestInit & { secret?: string | null }): Promise<Response>;
}

export async function startTestOrigin(root: string): Promise<TestOrigin> {
  const dir = mkdtempSync(join(tmpdir(), 'eris-origin-'));
  const kp = generateKeyPair('eris-test-1');
  const keyFile = join(dir, 'key.sec');
  writeFileSync(keyFile, kp.secret);
  const config = resolveConfig({
    flags: { bind: '127.0.0.1:0', storeRoot: root, signKeyPaths: [keyFile], edgeSecret: EDGE_SECRET },
    env: {},
  });
  const origin = await startOrigin(config, silentLogger);
  return {
    ...origin,
    publicKey: kp.public,
    keyFile,
    get(path, init = {}) {
      const headers = new Headers(init.headers);
      const secret = init.secret === undefined ? EDGE_SECRET : init.secret;
      if (secret !== null) headers.set('x-eris-edge-secret', secret);
      return fetch(origin.url + path, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(20_000) });
    },
  };
}
