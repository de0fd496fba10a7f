/** The origin for tests: on a free port over a store root (real Nix store), or in-process over any Store. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSigner, generateKeyPair } from '../../shared/signing.ts';
import { startOrigin, type RunningOrigin } from '../../origin/server/start.ts';
import { composeOrigin, type ComposedOrigin } from '../../origin/server/compose.ts';
import { silentLogger } from '../../origin/server/log.ts';
import { resolveConfig, type Raw } from '../../origin/config/index.ts';
import type { Store } from '../../origin/store/store.ts';

export const EDGE_SECRET = 'test-edge-secret-0123456789';

export interface TestOrigin extends RunningOrigin {
  publicKey: string;
  keyFile: string;
  get(path: string, init?: RequestInit & { secret?: string | null }): Promise<Response>;
}

export async function startTestOrigin(root: string, flags: Raw = {}): Promise<TestOrigin> {
  const dir = mkdtempSync(join(tmpdir(), 'eris-origin-'));
  const kp = generateKeyPair('eris-test-1');
  const keyFile = join(dir, 'key.sec');
  writeFileSync(keyFile, kp.secret);
  const config = resolveConfig({
    flags: { bind: '127.0.0.1:0', storeRoot: root, signKeyPaths: [keyFile], edgeSecret: EDGE_SECRET, ...flags },
    env: {},
  });
  let origin: RunningOrigin;
  try {
    origin = await startOrigin(config, silentLogger);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    ...origin,
    publicKey: kp.public,
    keyFile,
    /** Stops the origin and removes the dir holding its key. */
    async close() {
      await origin.close();
      rmSync(dir, { recursive: true, force: true });
    },
    get(path, init = {}) {
      const headers = new Headers(init.headers);
      const secret = init.secret === undefined ? EDGE_SECRET : init.secret;
      if (secret !== null) headers.set('x-eris-edge-secret', secret);
      return fetch(origin.url + path, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(20_000) });
    },
  };
}

export interface InProcessOrigin {
  app: ComposedOrigin['app'];
  deps: ComposedOrigin['deps'];
  publicKey: string;
  /** `app.request` with the edge secret (`secret: null` sends none). */
  get(path: string, init?: RequestInit & { secret?: string | null }): Promise<Response>;
}

/** The origin app over a given store (e.g. createMemoryStore()), answered in-process: no socket, no Nix. */
export function inProcessOrigin(store: Store, flags: Raw = {}): InProcessOrigin {
  const kp = generateKeyPair('eris-test-1');
  const config = resolveConfig({ flags: { signKeyPaths: ['(in memory)'], edgeSecret: EDGE_SECRET, ...flags }, env: {} });
  const { app, deps } = composeOrigin(config, { store, signers: [createSigner(kp.secret)] });
  return {
    app,
    deps,
    publicKey: kp.public,
    async get(path, init = {}) {
      const headers = new Headers(init.headers);
      const secret = init.secret === undefined ? EDGE_SECRET : init.secret;
      if (secret !== null) headers.set('x-eris-edge-secret', secret);
      return app.request(path, { ...init, headers });
    },
  };
}
