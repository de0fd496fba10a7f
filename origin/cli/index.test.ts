/** The `eris` command as a user types it. */
import { describe, expect, inject, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nixEnv, NIX_FLAGS } from '../../test/helpers/nix.ts';
import { eris } from '../../test/helpers/processes.ts';
import { tempDir } from '../../test/helpers/temp-dir.ts';

const fixture = inject('fixture');

describe('eris CLI', () => {
  it('keygen writes a Nix key pair (secret 0600) and refuses to overwrite it', () => {
    const dir = tempDir('eris-keygen-');
    const r = eris(['keygen', 'cli-test-1', join(dir, 's.sec'), join(dir, 's.pub')]);
    expect(r.status).toBe(0);
    expect(statSync(join(dir, 's.sec')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 's.pub'), 'utf8')).toMatch(/^cli-test-1:[A-Za-z0-9+/]{43}=$/);
    const again = eris(['keygen', 'cli-test-1', join(dir, 's.sec'), join(dir, 's.pub')]);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already exists/);
  });

  it.skipIf(!fixture)('keys from eris keygen sign paths that Nix verifies', () => {
    const dir = tempDir('eris-keygen-nix-');
    expect(eris(['keygen', 'ours-1', join(dir, 'k.sec'), join(dir, 'k.pub')]).status).toBe(0);
    const root = join(dir, 'root');
    const env = nixEnv();
    execFileSync('nix', [...NIX_FLAGS, 'copy', '--no-check-sigs', '--from', fixture!.root, '--to', root, fixture!.top], { env, stdio: 'pipe' });
    execFileSync('nix', [...NIX_FLAGS, 'store', 'sign', '--store', root, '--key-file', join(dir, 'k.sec'), '-r', fixture!.top], { env, stdio: 'pipe' });
    const verify = (pk: string) =>
      spawnSync('nix', [...NIX_FLAGS, 'store', 'verify', '--store', root, '--no-contents', '-r', fixture!.top, '--sigs-needed', '1', '--option', 'trusted-public-keys', pk], { env, encoding: 'utf8' });
    expect(verify(readFileSync(join(dir, 'k.pub'), 'utf8')).status).toBe(0);
    expect(verify('ours-1:' + Buffer.alloc(32, 1).toString('base64')).status).not.toBe(0);
  });

  it('serve fails at start with one clear line on bad configuration', () => {
    const dir = tempDir('eris-cli-');
    const noSecret = { ...process.env, ERIS_EDGE_SECRET: '' };
    const withSecret = { ...process.env, ERIS_EDGE_SECRET: 'a-long-enough-edge-secret' };
    writeFileSync(join(dir, 'bad.sec'), 'name:notbase64!');
    writeFileSync(join(dir, 'bad.toml'), 'colour = "blue"\n');
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['serve', '--sign-key', '/nonexistent.sec'], withSecret, /^eris: sign_key_paths\[0\]: cannot read \/nonexistent\.sec: ENOENT$/],
      [['serve', '--sign-key', join(dir, 'bad.sec')], withSecret, /^eris: sign_key_paths\[0\]: .*not valid base64$/],
      [['serve', '--sign-key', join(dir, 'bad.sec')], noSecret, /^eris: edge_secret: required/],
      [['serve', '--config', join(dir, 'bad.toml')], withSecret, /unknown key "colour"/],
      [['serve', '--config', join(dir, 'missing.toml')], withSecret, /^eris: cannot read config .*missing\.toml: ENOENT$/],
      [['serve', '--bogus'], withSecret, /^eris: Unknown option '--bogus'/],
      [['serve', '--bind', 'nope', '--sign-key', '/k'], withSecret, /^eris: bind: expected HOST:PORT/],
      [['frobnicate'], withSecret, /^eris: unknown command "frobnicate"/],
    ];
    for (const [args, env, re] of cases) {
      const r = eris(args, { env });
      expect({ args, status: r.status }).toEqual({ args, status: 2 });
      const first = r.stderr.trim().split('\n')[0];
      expect(first).toMatch(re);
    }
  });

  it('prints the usage on stdout for --help, of eris and of each command, and exits 0', () => {
    for (const args of [['--help'], ['-h'], ['help'], ['serve', '--help'], ['doctor', '--help'], ['keygen', '-h']]) {
      const r = eris(args);
      expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: '' });
      expect(r.stdout).toMatch(/^usage:\n  eris serve \[--config FILE\]/);
    }
    const token = eris(['token', 'add', '--help']);
    expect(token.status).toBe(0);
    expect(token.stdout).toMatch(/^usage:\n  eris token add USER/);
    // A command with flags of its own documents them all in its --help.
    const push = eris(['push', '--help']);
    expect(push.status).toBe(0);
    for (const flag of ['--oidc', '--part-size', '--retry-seconds', '--keep-revisions']) expect(push.stdout).toContain(flag);
  });

  it('serve fails with one line when the store root holds no Nix store', () => {
    const dir = tempDir('eris-cli-');
    expect(eris(['keygen', 'k-1', join(dir, 'k.sec'), join(dir, 'k.pub')]).status).toBe(0);
    const r = eris(['serve', '--store-root', dir, '--sign-key', join(dir, 'k.sec')], { env: { ...process.env, ERIS_EDGE_SECRET: 'a-long-enough-edge-secret' } });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`eris: store_root: no Nix store at ${dir}/nix/store`);
  });
});
