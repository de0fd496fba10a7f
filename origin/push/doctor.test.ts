/** eris doctor's push lines: off, a store the origin owns, the daemon, trust. */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../config/index.ts';
import { checkPush } from './doctor.ts';
import { hasNix } from '../../test/helpers/nix.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const base = { bind: '127.0.0.1:0', signKeyPaths: ['/k.sec'], edgeSecret: 'doctor-push-secret-0123456789' };

describe.skipIf(!hasNix())('doctor: push', () => {
  it('says push is off without push_dir', () => {
    const lines = checkPush(resolveConfig({ flags: base, env: {} }), []);
    expect(lines).toEqual([{ status: 'skip', what: 'push', detail: expect.stringMatching(/push_dir/) }]);
  });

  it('a chroot store the origin owns: staging, nix, store and trust ok', () => {
    const dir = tempDir('eris-doctor-push-');
    mkdirSync(join(dir, 'root/nix/store'), { recursive: true });
    mkdirSync(join(dir, 'root/nix/var/nix/db'), { recursive: true });
    const config = resolveConfig({ flags: { ...base, storeRoot: join(dir, 'root'), pushDir: join(dir, 'push') }, env: {} });
    const lines = checkPush(config, ['k-1:AAAA']);
    expect(lines.map((l) => [l.status, l.what])).toEqual([['ok', 'push staging'], ['ok', 'push nix'], ['ok', 'push store'], ['ok', 'push trust']]);
    expect(existsSync(join(dir, 'push'))).toBe(true);
  });

  it.skipIf(existsSync('/nix/var/nix/daemon-socket/socket'))('push_store = "daemon" without a daemon fails with what to do', () => {
    const dir = tempDir('eris-doctor-push-');
    const config = resolveConfig({ file: { pushStore: 'daemon' }, flags: { ...base, pushDir: join(dir, 'push') }, env: {} });
    const store = checkPush(config, ['k-1:AAAA']).find((l) => l.what === 'push store')!;
    expect(store.status).toBe('FAIL');
    expect(store.detail).toMatch(/nix-daemon/);
  });
});
