/** composeOrigin's steps: a step that fails closes what the earlier ones opened, and close() closes everything once. */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSigner, generateKeyPair } from '../../shared/signing.ts';
import { createMemoryStore } from '../../test/helpers/memory-store.ts';
import { ConfigError, resolveConfig, type Raw } from '../config/index.ts';
import { composeOrigin } from './compose.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const signer = createSigner(generateKeyPair('compose-test-1').secret);

function compose(extra: Raw) {
  const store = createMemoryStore([{ name: 'hello' }]);
  let closed = 0;
  store.close = () => void closed++;
  const config = resolveConfig({ file: { signKeyPaths: ['(k)'], edgeSecret: 'a-long-enough-edge-secret', storeRoot: '/nonexistent-root', ...extra }, env: {} });
  const run = () => composeOrigin(config, { store, signers: [signer], closureDb: undefined });
  return { run, closed: () => closed };
}

describe('composeOrigin', () => {
  const dir = tempDir('eris-compose-');
  const notADir = join(dir, 'file');
  writeFileSync(notADir, '');

  it('names the key of a step that fails and closes the store it opened first', () => {
    for (const [extra, re] of [
      [{ stateDir: join(notADir, 'state') }, /^state_dir: /],
      [{ narCacheDir: join(notADir, 'cache') }, /^nar_cache_dir: /],
      [{ stateDir: join(dir, 'state'), pushDir: join(notADir, 'push') }, /^push_dir: /],
    ] as const) {
      const c = compose(extra);
      expect(c.run).toThrow(ConfigError);
      expect(c.run).toThrow(re);
      expect({ extra, closed: c.closed() }).toEqual({ extra, closed: 2 }); // once per failed run
    }
  });

  it('close() closes the store once, however often it is called', async () => {
    const c = compose({ stateDir: join(dir, 'state-ok') });
    const origin = c.run();
    await origin.ready;
    origin.close();
    origin.close();
    expect(c.closed()).toBe(1);
  });
});
