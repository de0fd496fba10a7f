import type { HttpBindings } from '@hono/node-server';
import type { Store } from './store/store.ts';
import type { Signer } from '../shared/signing.ts';
import type { Logger } from './log.ts';

/** What the routes need; built once in main.ts (or by a test). */
export interface OriginDeps {
  store: Store;
  signers: Signer[];
  log: Logger;
}

export interface AppSettings {
  storeDir: string;
  priority: number;
  edgeSecret: string;
  version: string;
}

/** Hono environment of the origin app. Bindings are absent under app.request() in tests. */
export type OriginEnv = {
  Bindings: Partial<HttpBindings>;
  Variables: { deps: OriginDeps; settings: AppSettings };
};
